"""Dagster definitions of the demo project: three small assets and a job that materialises them.

``BRANCH_NAME`` is set in the image by the Dockerfile from dagster-uc's build arg, so each
branch's code location reports which branch it runs.
"""

import os

from dagster import (
    AssetExecutionContext,
    Definitions,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

BRANCH_NAME = os.environ.get("BRANCH_NAME", "local")


@asset(group_name="demo")
def raw_numbers() -> list[int]:
    """The numbers 1 to 10."""
    return list(range(1, 11))


@asset(group_name="demo")
def squares(raw_numbers: list[int]) -> list[int]:
    """Each number squared."""
    return [n * n for n in raw_numbers]


@asset(group_name="demo")
def summary(context: AssetExecutionContext, squares: list[int]) -> MaterializeResult:
    """Count and total of the squares, with the branch that computed them."""
    total = sum(squares)
    context.log.info(f"branch {BRANCH_NAME}: {len(squares)} squares, total {total}")
    return MaterializeResult(
        metadata={
            "branch": MetadataValue.text(BRANCH_NAME),
            "count": MetadataValue.int(len(squares)),
            "total": MetadataValue.int(total),
        }
    )


demo_job = define_asset_job("demo_job", selection=[raw_numbers, squares, summary])

defs = Definitions(
    assets=[raw_numbers, squares, summary],
    jobs=[demo_job],
    schedules=[ScheduleDefinition(job=demo_job, cron_schedule="0 6 * * *")],
)
