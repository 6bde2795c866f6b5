"""``tekton-mlops approve``: decide an ApprovalTask a local PipelineRun waits on.

What ``tkn-approvaltask approve|reject|list`` does on a cluster, for runs of
``tekton-mlops run``. Exit codes: 0 recorded (or listed), 1 refused (no such run or task,
not an approver, already decided, the run has ended), 2 bad arguments.
"""

from __future__ import annotations

from pathlib import Path

import click

from tekton_mlops.guard import run_guarded

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command("approve", context_settings=CONTEXT_SETTINGS)
@click.argument("run", required=False)
@click.argument("task", required=False)
@click.option("--approve", "decision", flag_value="approve", help="Approve.")
@click.option("--reject", "decision", flag_value="reject", help="Reject (fails the gate).")
@click.option("--user", "-u", default="", help="Who decides: a name among the approvers.")
@click.option("--message", "-m", default="", help="Why, kept with the decision.")
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="NAME",
    help="Act as a member of the group approver group:NAME (repeatable). Locally nothing "
    "checks membership: on a cluster the API server's user info does.",
)
@click.option("--list", "listing", is_flag=True, help="List the approvals still waiting.")
@click.option(
    "--run-dir",
    "--runs-dir",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".tekton-mlops/runs"),
    show_default=True,
    help="Where `tekton-mlops run` keeps its runs.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def approve(
    run: str | None,
    task: str | None,
    decision: str | None,
    user: str,
    message: str,
    groups: tuple[str, ...],
    listing: bool,
    run_dir: Path,
    debug: bool,
) -> None:
    """Approve or reject the approval TASK (a pipeline task) of the PipelineRun RUN.

    \b
      tekton-mlops approve train-and-deploy-x7k2p approve-promotion --approve --user alice
      tekton-mlops approve train-and-deploy-x7k2p approve-promotion --reject --user bob \\
        --message "p99 too close to the SLO"
      tekton-mlops approve --list

    RUN is the PipelineRun's name (`tekton-mlops run` prints it; its folder is in
    --run-dir). Any reject fails the gate; it passes once as many distinct approvers as
    numberOfApprovalsRequired have approved; an approval counts once per user. The user
    is who you say: the local gate records a decision, it authenticates nobody.
    """
    if listing:
        if run or task or decision or user:
            raise click.UsageError("--list takes no RUN, TASK, decision or --user")
        run_guarded(lambda: _list(run_dir), debug)
        return
    if not run or not task:
        raise click.UsageError("RUN and TASK are required (or --list)")
    if decision is None:
        raise click.UsageError("say --approve or --reject")
    if not user.strip():
        raise click.UsageError("--user NAME is required: who decides")
    chosen_run, chosen_task = run, task
    run_guarded(
        lambda: _decide(
            run_dir, chosen_run, chosen_task, user, decision == "approve", message, groups
        ),
        debug,
    )


def _decide(
    run_dir: Path,
    run: str,
    task: str,
    user: str,
    approve: bool,
    message: str,
    groups: tuple[str, ...],
) -> None:
    from tekton_mlops.local import approval_store

    folder = approval_store.find(run_dir, run, task)
    decided = approval_store.decide(folder, user, approve, message, groups)
    status = decided["status"]
    name = decided["metadata"]["name"]
    word = "approved" if approve else "rejected"
    progress = f"{status['approvalsReceived']} of {status['approvalsRequired']} approvals"
    outcome = {
        "approved": "approved: the run goes on",
        "rejected": "rejected: the run fails",
    }.get(status["state"], "still pending")
    click.echo(f"{user} {word} {name} ({progress}); ApprovalTask {outcome}")


def _list(run_dir: Path) -> None:
    from tekton_mlops.local import approval_store

    waiting = approval_store.pending(run_dir)
    if not waiting:
        click.echo(f"no approval is waiting in {run_dir}")
        return
    rows = [("RUN", "TASK", "APPROVALS", "APPROVERS", "EXPIRES", "DESCRIPTION")]
    rows += [
        (
            p.run,
            p.task,
            f"{p.received}/{p.required}",
            ",".join(p.approvers),
            p.expires,
            p.description,
        )
        for p in waiting
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[5]]).rstrip())
