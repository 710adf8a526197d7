"""``interp tasks``: list the tasks found (built-in, and the function-vectors JSON tasks of --tasks-dir)."""

from __future__ import annotations

HELP = "list available tasks"


def add_parser(sub) -> None:
    p = sub.add_parser("tasks", help=HELP, description=__doc__)
    p.add_argument("--tasks-dir", default=None)


def run(args) -> int:
    from interp.tasks import list_tasks, load_task, resolve_tasks_dir

    root = resolve_tasks_dir(args.tasks_dir)
    print(f"tasks in {root}:")
    for name, path in list_tasks(args.tasks_dir).items():
        task = load_task(str(path))
        print(f"  {name:<28} {len(task.pairs):>6} pairs  {path.parent.name}")
    return 0
