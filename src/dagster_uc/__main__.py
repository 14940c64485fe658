from dagster_uc.cli import main

main()
