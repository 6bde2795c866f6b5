# ruff: noqa: UP006, UP007, UP014, UP035, UP045, SIM115 - the annotations are the typing forms
# the KFP SDK reads (List, Dict, Optional, functional NamedTuple), and component bodies
# (shipped to the step as source) stay short.
"""KFP pipelines the tests compile to Tekton and run, one or more per row of the mapping.

Components are plain KFP: lightweight Python components (``@component``, the runtime
image's Python and kfp) and container components whose programs are POSIX shell, so the
process runner runs them with this machine's ``sh``. Tests compare what a run produced
with what the components' Python functions (``.python_func``) compute directly.
"""

import functools
from typing import Dict, List, NamedTuple, Optional

from kfp import dsl, kubernetes
from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    InputPath,
    Markdown,
    Metrics,
    Model,
    Output,
    OutputPath,
    PipelineConfig,
    WorkspaceConfig,
)

#: Pinned so the SDK does not warn about its default base image (unused here: lightweight
#: components run in the runtime image).
component = functools.partial(dsl.component, base_image="python:3.11")


# Parameters ---------------------------------------------------------------------------------


@component
def describe(text: str, count: int, ratio: float, flag: bool, items: list, mapping: dict) -> str:
    return f"{text}|{count * 2}|{ratio * 2}|{not flag}|{len(items)}:{items[-1]}|{sorted(mapping)}"


@component
def types_out() -> NamedTuple(
    "Out",
    [("s", str), ("i", int), ("f", float), ("b", bool), ("l", list), ("d", dict)],
):
    from collections import namedtuple

    out = namedtuple("Out", ["s", "i", "f", "b", "l", "d"])
    return out("héllo wörld", 42, 0.125, True, [1, "two", 3.5], {"k": [1, 2], "n": None})


@component
def types_in(s: str, i: int, f: float, b: bool, l: list, d: dict) -> str:  # noqa: E741
    return repr((s, i, f, b, l, d))


@dsl.pipeline(name="params-types")
def params_types(
    text: str = "a b",
    count: int = 3,
    ratio: float = 0.25,
    flag: bool = False,
    items: List[str] = ["x", "y"],  # noqa: B006
    mapping: Dict[str, int] = {"b": 1, "a": 2},  # noqa: B006
) -> str:
    first = describe(text=text, count=count, ratio=ratio, flag=flag, items=items, mapping=mapping)
    out = types_out()
    types_in(
        s=out.outputs["s"],
        i=out.outputs["i"],
        f=out.outputs["f"],
        b=out.outputs["b"],
        l=out.outputs["l"],
        d=out.outputs["d"],
    )
    return first.output


@component
def optional_inputs(
    given: str, absent: Optional[str] = None, defaulted: int = 7, empty: str = ""
) -> str:
    return f"{given}|{absent}|{defaulted}|{empty!r}"


@dsl.pipeline(name="optional-inputs")
def optional_pipeline(maybe: Optional[str] = None, number: int = 5) -> str:
    optional_inputs(given="g")
    return optional_inputs(given="h", absent=maybe, defaulted=number).output


@component
def produce_paths(text: OutputPath(str), number: OutputPath(int), flag: OutputPath(bool)):
    with open(text, "w") as f:
        f.write("from a file")
    with open(number, "w") as f:
        f.write("12")
    with open(flag, "w") as f:
        f.write("True")


@component
def combine(text: str, number: int, flag: bool) -> str:
    return f"{text}:{number + 1}:{flag and True}"


@dsl.pipeline(name="output-paths")
def output_paths() -> str:
    made = produce_paths()
    return combine(
        text=made.outputs["text"], number=made.outputs["number"], flag=made.outputs["flag"]
    ).output


# Container components and placeholders --------------------------------------------------------


@dsl.container_component
def shell_echo(
    word: str,
    number: int,
    items: list,
    out: OutputPath(str),
    suffix: Optional[str] = None,
):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'printf "%s" "$0 $1 $2 $3" > "$4"'],
        args=[
            dsl.ConcatPlaceholder(["w=", word, "!"]),
            number,
            items,
            dsl.IfPresentPlaceholder(input_name="suffix", then=[suffix], else_=["no-suffix"]),
            out,
        ],
    )


@dsl.container_component
def shell_executor_input(word: str, out: OutputPath(str)):
    # {{$}}: the whole executor input, as KFP's launcher passes it
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'printf "%s" "$0" > "$1"'],
        args=[dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER, out],
    )


@component
def parse_executor_input(text: str) -> str:
    import json

    data = json.loads(text)
    return (
        data["inputs"]["parameterValues"]["word"] + "/" + sorted(data["outputs"]["parameters"])[0]
    )


@dsl.pipeline(name="container-placeholders")
def container_placeholders(word: str = "hi") -> NamedTuple(
    "Outputs", [("with_suffix", str), ("without", str), ("executor", str)]
):
    a = shell_echo(word=word, number=3, items=[1, 2], suffix="s")
    b = shell_echo(word=word, number=4, items=[])
    c = shell_executor_input(word=word)
    parsed = parse_executor_input(text=c.outputs["out"])
    outputs = NamedTuple("Outputs", [("with_suffix", str), ("without", str), ("executor", str)])
    return outputs(a.outputs["out"], b.outputs["out"], parsed.output)


# Artifacts ----------------------------------------------------------------------------------


@component
def make_artifacts(
    rows: int,
    data: Output[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[Markdown],
    page: Output[HTML],
    embedding: Output[Artifact],
):
    import os

    with open(data.path, "w") as f:
        f.write("\n".join(str(i) for i in range(rows)))
    data.metadata["rows"] = rows
    os.makedirs(model.path)
    with open(os.path.join(model.path, "weights.txt"), "w") as f:
        f.write("w=1")
    model.metadata["framework"] = "none"
    metrics.log_metric("accuracy", 0.75)
    confusion.log_confusion_matrix(["a", "b"], [[3, 1], [0, 4]])
    with open(report.path, "w") as f:
        f.write("# report")
    with open(page.path, "w") as f:
        f.write("<p>page</p>")
    with open(embedding.path, "w") as f:
        f.write("0.1,0.2")


@component
def read_artifacts(
    data: Input[Dataset],
    model: Input[Model],
    metrics: Input[Metrics],
    confusion: Input[ClassificationMetrics],
    report: Input[Markdown],
    page: Input[HTML],
    embedding: Input[Artifact],
    data_path: InputPath("Dataset"),
) -> str:
    import os

    lines = open(data.path).read().splitlines()
    assert open(data_path).read() == open(data.path).read()
    weights = open(os.path.join(model.path, "weights.txt")).read()
    return "|".join(
        [
            f"{len(lines)}:{data.metadata['rows']}",
            f"{weights}:{model.metadata['framework']}",
            str(metrics.metadata["accuracy"]),
            str(confusion.metadata["confusionMatrix"]["rows"][0]["row"]),
            open(report.path).read(),
            open(page.path).read(),
            open(embedding.path).read() + ":" + type(embedding).__name__,
        ]
    )


@dsl.container_component
def artifact_placeholders(data: Input[Dataset], out: OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'printf "%s %s %s" "$(wc -l < "$0")" "$1" "$2" > "$3"'],
        args=[
            data.path,
            dsl.ConcatPlaceholder(["uri-ok:", data.uri]),
            "{{$.inputs.artifacts['data'].metadata['rows']}}",
            out,
        ],
    )


@dsl.pipeline(name="artifact-types")
def artifact_types(rows: int = 4) -> NamedTuple(
    "Outputs", [("read", str), ("shell", str), ("data", Dataset)]
):
    made = make_artifacts(rows=rows)
    read = read_artifacts(
        data=made.outputs["data"],
        model=made.outputs["model"],
        metrics=made.outputs["metrics"],
        confusion=made.outputs["confusion"],
        report=made.outputs["report"],
        page=made.outputs["page"],
        embedding=made.outputs["embedding"],
        data_path=made.outputs["data"],
    )
    shell = artifact_placeholders(data=made.outputs["data"])
    outputs = NamedTuple("Outputs", [("read", str), ("shell", str), ("data", Dataset)])
    return outputs(read.output, shell.outputs["out"], made.outputs["data"])


@component
def pythonic_dataset(text: str) -> Dataset:
    dataset = Dataset(uri=dsl.get_uri(), metadata={"length": len(text)})
    with open(dataset.path, "w") as f:
        f.write(text)
    return dataset


@component
def pythonic_join(datasets: List[Dataset]) -> str:
    return (
        "".join(open(d.path).read() for d in datasets)
        + f":{sum(d.metadata['length'] for d in datasets)}"
    )


@dsl.pipeline(name="pythonic-artifacts")
def pythonic_artifacts(texts: List[str] = ["ab", "c", "def"]) -> str:  # noqa: B006
    with dsl.ParallelFor(texts) as text:
        made = pythonic_dataset(text=text)
    return pythonic_join(datasets=dsl.Collected(made.output)).output


@component
def read_text(data: Input[Dataset]) -> str:
    return open(data.path).read() + f"|{data.metadata.get('source')}"


@dsl.pipeline(name="importer-file")
def importer_file(uri: str) -> str:
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset, metadata={"source": "a test"})
    return read_text(data=imported.output).output


# Control flow -------------------------------------------------------------------------------


@component
def classify(number: int) -> str:
    return "small" if number < 10 else "medium" if number < 100 else "large"


@component
def say(text: str) -> str:
    return text.upper()


@dsl.pipeline(name="if-elif-else")
def if_elif_else(number: int = 50) -> str:
    kind = classify(number=number)
    with dsl.If(kind.output == "small"):
        a = say(text="few")
    with dsl.Elif(kind.output == "medium"):
        b = say(text="some")
    with dsl.Else():
        c = say(text="many")
    return dsl.OneOf(a.output, b.output, c.output)


@component
def add(a: int, b: int) -> int:
    return a + b


@dsl.pipeline(name="nested-conditions")
def nested_conditions(x: int = 5, y: int = 20) -> None:
    first = add(a=x, b=0)
    with dsl.If(first.output > 3):
        second = add(a=first.output, b=y)
        with dsl.If(second.output >= 25):
            add(a=second.output, b=100)
        with dsl.Else():
            add(a=second.output, b=-100)


@dsl.pipeline(name="condition-false")
def condition_false(x: int = 1) -> int:
    base = add(a=x, b=1)
    with dsl.If(base.output > 100):
        add(a=base.output, b=1)
    return add(a=base.output, b=10).output


@component
def double(num: int) -> int:
    return 2 * num


@component
def total(nums: List[int]) -> int:
    return sum(nums)


@component
def nested_total(nums: List[List[int]]) -> int:
    return sum(sum(inner) for inner in nums)


@dsl.pipeline(name="loop-static")
def loop_static() -> NamedTuple("Outputs", [("sum", int), ("doubled", List[int])]):
    with dsl.ParallelFor([1, 2, 3, 4]) as n:
        d = double(num=n)
    s = total(nums=dsl.Collected(d.output))
    outputs = NamedTuple("Outputs", [("sum", int), ("doubled", List[int])])
    return outputs(s.output, dsl.Collected(d.output))


@dsl.pipeline(name="loop-param")
def loop_param(numbers: List[int] = [3, 5], offset: int = 1) -> int:  # noqa: B006
    with dsl.ParallelFor(numbers, parallelism=1) as n:
        d = double(num=n)
        e = add(a=d.output, b=offset)
    return total(nums=dsl.Collected(e.output)).output


@component
def make_rows() -> List[Dict[str, int]]:
    return [{"a": 1, "b": 10}, {"a": 2, "b": 20}, {"a": 3, "b": 30}]


@dsl.pipeline(name="loop-task-output")
def loop_task_output() -> int:
    rows = make_rows()
    with dsl.ParallelFor(rows.output) as row:
        s = add(a=row.a, b=row.b)
    return total(nums=dsl.Collected(s.output)).output


@dsl.pipeline(name="nested-loops")
def nested_loops(outer: List[int] = [1, 2]) -> int:  # noqa: B006
    with dsl.ParallelFor(outer) as o, dsl.ParallelFor([10, 20, 30]) as i:
        s = add(a=o, b=i)
    return nested_total(nums=dsl.Collected(s.output)).output


@dsl.pipeline(name="condition-in-loop")
def condition_in_loop(threshold: int = 3) -> int:
    with dsl.ParallelFor([1, 2, 3, 4, 5]) as n, dsl.If(n >= threshold):
        d = double(num=n)
    return total(nums=dsl.Collected(d.output)).output


@dsl.pipeline(name="nested-conditions-in-loops")
def nested_conditions_in_loops(limit: int = 25) -> NamedTuple(
    "Outputs", [("big", int), ("small", int)]
):
    with dsl.ParallelFor([1, 2, 3]) as o, dsl.ParallelFor([5, 10]) as i:
        prod = add(a=o, b=i)
        with dsl.If(prod.output > 6):
            d = double(num=prod.output)
            with dsl.If(d.output > limit):
                big = add(a=d.output, b=1000)
            with dsl.If(d.output <= limit):
                small = add(a=d.output, b=0)
    big_total = nested_total(nums=dsl.Collected(big.output))
    small_total = nested_total(nums=dsl.Collected(small.output))
    outputs = NamedTuple("Outputs", [("big", int), ("small", int)])
    return outputs(big_total.output, small_total.output)


@component
def write_number(num: int, out: Output[Dataset]):
    with open(out.path, "w") as f:
        f.write(str(num))
    out.metadata["num"] = num


@component
def sum_datasets(datasets: Input[List[Dataset]]) -> str:
    values = [int(open(d.path).read()) for d in datasets]
    metadata = [d.metadata["num"] for d in datasets]
    return f"{sum(values)}:{metadata}"


@component
def read_number(data: Input[Dataset]) -> int:
    return int(open(data.path).read()) * 10


@dsl.pipeline(name="numbers")
def numbers(values: List[int] = [4, 5, 6]) -> List[Dataset]:  # noqa: B006
    with dsl.ParallelFor(values) as n:
        w = write_number(num=n)
    return dsl.Collected(w.outputs["out"])


@dsl.pipeline(name="artifact-fan-in")
def artifact_fan_in() -> NamedTuple("Outputs", [("fan_in", str), ("looped", int)]):
    made = numbers()
    fan_in = sum_datasets(datasets=made.output)
    with dsl.ParallelFor(made.output) as item:
        r = read_number(data=item)
    looped = total(nums=dsl.Collected(r.output))
    outputs = NamedTuple("Outputs", [("fan_in", str), ("looped", int)])
    return outputs(fan_in.output, looped.output)


# Exit handlers and failures ----------------------------------------------------------------


@component
def record_status(status: dsl.PipelineTaskFinalStatus, note: str) -> str:
    return f"{status.state}|{status.pipeline_task_name}|{note}|{bool(status.error_message)}"


@component
def fail(message: str) -> str:
    import sys

    print(message, file=sys.stderr)
    sys.exit(3)


@dsl.pipeline(name="exit-handler-ok")
def exit_handler_ok(note: str = "done") -> None:
    exit_task = record_status(note=note)
    with dsl.ExitHandler(exit_task, name="guarded"):
        add(a=1, b=2)


@dsl.pipeline(name="exit-handler-failure")
def exit_handler_failure(note: str = "cleanup") -> None:
    exit_task = record_status(note=note)
    with dsl.ExitHandler(exit_task, name="guarded"):
        first = add(a=1, b=2)
        broken = fail(message="boom")
        add(a=first.output, b=1).after(broken)


@dsl.pipeline(name="failure-propagates")
def failure_propagates() -> int:
    broken = fail(message="no")
    after = add(a=1, b=1).after(broken)
    return add(a=after.output, b=1).output


@component
def fallback(message: str = "default") -> str:
    return f"fallback:{message}"


@dsl.pipeline(name="ignore-upstream-failure")
def ignore_upstream_failure() -> None:
    broken = fail(message="x")
    fallback(message=broken.output).ignore_upstream_failure()


@component
def get_state(status: dict) -> str:
    return status["state"]


@component
def alert(state: str) -> str:
    return f"alert:{state}"


@dsl.pipeline(name="notify")
def notify(status: dsl.PipelineTaskFinalStatus):
    state = get_state(status=status)
    with dsl.If(state.output == "FAILED"):
        alert(state=state.output)


@dsl.pipeline(name="exit-pipeline")
def exit_pipeline() -> None:
    exit_task = notify()
    with dsl.ExitHandler(exit_task):
        fail(message="for the exit pipeline")


# Nested pipelines, ordering, retries, settings ---------------------------------------------------


@dsl.pipeline(name="inner")
def inner(x: int, y: int = 100) -> NamedTuple("Inner", [("sum", int), ("data", Dataset)]):
    s = add(a=x, b=y)
    w = write_number(num=s.output)
    outputs = NamedTuple("Inner", [("sum", int), ("data", Dataset)])
    return outputs(s.output, w.outputs["out"])


@dsl.pipeline(name="middle")
def middle(x: int) -> int:
    first = inner(x=x)
    second = inner(x=first.outputs["sum"], y=1)
    return read_number(data=second.outputs["data"]).output


@dsl.pipeline(name="nested-pipelines")
def nested_pipelines(x: int = 2) -> int:
    m = middle(x=x)
    return add(a=m.output, b=inner(x=x).outputs["sum"]).output


@component
def stamp(name: str, folder: str) -> str:
    import os
    import time

    time.sleep(0.2)
    with open(os.path.join(folder, "order.txt"), "a") as f:
        f.write(name + "\n")
    return name


@dsl.pipeline(name="after-ordering")
def after_ordering(folder: str) -> None:
    a = stamp(name="a", folder=folder)
    b = stamp(name="b", folder=folder).after(a)
    stamp(name="c", folder=folder).after(a, b)


@component
def flaky(folder: str, fail_times: int) -> int:
    import os

    path = os.path.join(folder, "attempts.txt")
    attempts = int(open(path).read()) if os.path.exists(path) else 0
    with open(path, "w") as f:
        f.write(str(attempts + 1))
    if attempts < fail_times:
        raise RuntimeError(f"attempt {attempts + 1} fails")
    return attempts + 1


@dsl.pipeline(name="retries")
def retries(folder: str) -> int:
    return flaky(folder=folder, fail_times=2).set_retry(num_retries=2).output


@component
def flaky_timed(root: str) -> str:
    import os
    import time

    path = os.path.join(root, "attempts.txt")
    with open(path, "a") as f:
        f.write(f"start {time.time()}\n")
    if len(open(path).read().splitlines()) == 1:
        with open(path, "a") as f:
            f.write(f"fail {time.time()}\n")
        raise RuntimeError("the first attempt fails")
    return open(path).read()


@dsl.pipeline(name="retry-backoff")
def retry_backoff() -> str:
    # The pipeline root is the run's kfp workspace: each attempt (a new pod) sees it.
    task = flaky_timed(root=dsl.PIPELINE_ROOT_PLACEHOLDER)
    return task.set_retry(num_retries=2, backoff_duration="1s").output


@component
def count_runs(folder: str) -> int:
    import os

    path = os.path.join(folder, "runs.txt")
    with open(path, "a") as f:
        f.write("run\n")
    return len(open(path).read().splitlines())


@dsl.pipeline(name="no-caching")
def no_caching(folder: str) -> int:
    return count_runs(folder=folder).set_caching_options(True).output


@component
def read_env(names: List[str]) -> str:
    import os

    return ",".join(f"{n}={os.environ.get(n)}" for n in names)


@dsl.container_component
def shell_env(out: OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine", command=["sh", "-c", 'printf "%s" "$GREETING" > "$0"'], args=[out]
    )


@dsl.pipeline(name="env-and-resources")
def env_and_resources() -> NamedTuple("Outputs", [("python", str), ("shell", str)]):
    p = (
        read_env(names=["MODE", "LEVEL"])
        .set_env_variable("MODE", "fast")
        .set_env_variable("LEVEL", "3")
        .set_cpu_request("100m")
        .set_cpu_limit("1")
        .set_memory_limit("512Mi")
    )
    s = (
        shell_env()
        .set_env_variable("GREETING", "hello there")
        .set_accelerator_type("nvidia.com/gpu")
    )
    s.set_accelerator_limit(1)
    outputs = NamedTuple("Outputs", [("python", str), ("shell", str)])
    return outputs(p.output, s.outputs["out"])


@component
def read_secret(names: List[str], folder: str) -> str:
    import os

    env = ",".join(f"{n}={os.environ.get(n)}" for n in names)
    files = ",".join(sorted(os.listdir(folder)))
    return f"{env}|{files}:{open(os.path.join(folder, 'token')).read()}"


@dsl.pipeline(name="kubernetes-secrets")
def kubernetes_secrets() -> str:
    task = read_secret(names=["PASSWORD", "REGION"], folder="/mnt/creds")
    kubernetes.use_secret_as_env(task, secret_name="db", secret_key_to_env={"password": "PASSWORD"})
    kubernetes.use_secret_as_volume(task, secret_name="api", mount_path="/mnt/creds")
    kubernetes.use_config_map_as_env(
        task, config_map_name="settings", config_map_key_to_env={"region": "REGION"}
    )
    kubernetes.add_node_selector(task, label_key="disk", label_value="ssd")
    return task.output


@component
def show(value: str, job: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER) -> str:
    return f"{value}|{job}"


@dsl.pipeline(name="run-placeholders")
def run_placeholders(name: str = "kfp") -> NamedTuple(
    "Outputs", [("fstring", str), ("task", str), ("job", str)]
):
    greeting = say(text=f"hello {name}")
    fstring = show(value=f"{greeting.output}, again", job="fixed")
    task = show(value=dsl.PIPELINE_TASK_NAME_PLACEHOLDER)
    job = show(value=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    outputs = NamedTuple("Outputs", [("fstring", str), ("task", str), ("job", str)])
    return outputs(fstring.output, task.output, job.output)


@component(packages_to_install=["numpy"])
def with_numpy(n: int) -> float:
    import numpy

    return float(numpy.arange(n).sum())


@component(packages_to_install=["surely-not-installed-package==1.0"])
def needs_missing_package() -> str:
    return "never"


@dsl.pipeline(name="packages")
def packages_ok(n: int = 5) -> float:
    return with_numpy(n=n).output


@dsl.pipeline(name="packages-missing")
def packages_missing() -> str:
    return needs_missing_package().output


# ParallelFor parallelism ------------------------------------------------------------------------


@component
def timed_sleep(root: str, folder: str, n: int, seconds: float) -> int:
    import os
    import time

    start = time.time()
    time.sleep(seconds)
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    with open(os.path.join(root, folder, str(n)), "w") as f:
        f.write(f"{start} {time.time()}")
    return n


@dsl.container_component
def shell_timed(root: str, n: int, out: OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine",
        command=[
            "sh",
            "-c",
            'mkdir -p "$0/shell"; s=$(date +%s.%N); sleep 1; '
            'printf "%s %s" "$s" "$(date +%s.%N)" > "$0/shell/$1"; printf ok > "$2"',
        ],
        args=[root, n, out],
    )


@dsl.pipeline(name="limited-loops")
def limited_loops(seconds: float = 1.5) -> None:
    with dsl.ParallelFor([0, 1, 2, 3, 4, 5], parallelism=2) as n:
        timed_sleep(root=dsl.PIPELINE_ROOT_PLACEHOLDER, folder="python", n=n, seconds=seconds)
    with dsl.ParallelFor([0, 1, 2, 3], parallelism=2) as m:
        shell_timed(root=dsl.PIPELINE_ROOT_PLACEHOLDER, n=m)


@dsl.pipeline(name="unlimited-loop")
def unlimited_loop(seconds: float = 3.0) -> None:
    with dsl.ParallelFor([0, 1, 2, 3, 4, 5]) as n:
        timed_sleep(root=dsl.PIPELINE_ROOT_PLACEHOLDER, folder="python", n=n, seconds=seconds)


# The pipeline workspace ---------------------------------------------------------------------------


@component
def write_note(workspace: str, text: str) -> str:
    import os

    with open(os.path.join(workspace, "note.txt"), "w") as f:
        f.write(text)
    return workspace


@component
def read_note(workspace: str) -> str:
    import os

    return open(os.path.join(workspace, "note.txt")).read()


@dsl.container_component
def shell_read_note(out: OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine",
        command=["sh", "-c", 'cat "$0/note.txt" > "$1"'],
        args=[dsl.WORKSPACE_PATH_PLACEHOLDER, out],
    )


@dsl.pipeline(
    name="shared-workspace", pipeline_config=PipelineConfig(workspace=WorkspaceConfig(size="1Gi"))
)
def shared_workspace(text: str = "left in the workspace") -> NamedTuple(
    "Outputs", [("python", str), ("shell", str), ("path", str)]
):
    written = write_note(workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, text=text)
    python = read_note(workspace=dsl.WORKSPACE_PATH_PLACEHOLDER).after(written)
    shell = shell_read_note().after(written)
    outputs = NamedTuple("Outputs", [("python", str), ("shell", str), ("path", str)])
    return outputs(python.output, shell.outputs["out"], written.output)
