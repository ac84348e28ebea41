"""The production deployment files, checked without a Docker engine.

``docker-compose.yml`` is validated against the Compose Specification schema shipped in
``tests/data`` (its source: ``tests/data/README.md``), then against the rules the deployment
relies on: start order through health and completion conditions, required secrets that stop
``docker compose`` when missing, a single beat, and commands that name code which exists.
The Dockerfile and ``.env.example`` are checked alongside, because they are read together.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import typer.core
import typer.main
import yaml
from celery import Celery
from celery.app.utils import find_app
from fastapi import FastAPI
from sqlalchemy import make_url
from uvicorn.importer import import_from_string

from config.settings import Settings, load_settings
from service.broker import SEND_QUEUE

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
PYPROJECT = ROOT / "pyproject.toml"

OUR_IMAGE = "ptnudge:latest"
PYTHON_SERVICES = {"migrate", "web", "worker", "control-worker", "beat"}
# Without these the deployment cannot work at all, so compose must refuse to start.
REQUIRED_VARIABLES = {
    "POSTGRES_PASSWORD",
    "PTNUDGE_PUBLIC_URL",
    "PTNUDGE_EMAIL_FROM",
    "PTNUDGE_SECRET_KEY",
    "PTNUDGE_SMTP_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
}
SECRET_LIKE = re.compile(r"PASSWORD|SECRET|TOKEN")
# What an operator's .env would hold; realistic enough for Settings' production checks.
FILLED_IN_ENV = {
    "POSTGRES_PASSWORD": "Zq8x4Lr2Vn7Kp1Ts",
    "PTNUDGE_PUBLIC_URL": "https://reminders.example.org",
    "PTNUDGE_SECRET_KEY": "k3GvR9wXb2LmQ8tYz5NcH7pJd4SfA6eU",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "fedcba9876543210" * 2,
    "TWILIO_FROM_NUMBER": "+13125550100",
    "PTNUDGE_SMTP_URL": "smtp://apikey:Vb7Qm2Xk9Lp4@smtp.example.org:587?starttls=1",
    "PTNUDGE_EMAIL_FROM": "reminders@example.org",
}
HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"


# --- reading the files -----------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    found = load_compose()["services"]
    assert isinstance(found, dict)
    return found


def our_services() -> dict[str, dict[str, Any]]:
    """The services that run the ptnudge image (the others run upstream images)."""
    return {name: svc for name, svc in services().items() if svc.get("image") == OUR_IMAGE}


def is_one_shot(service: Mapping[str, Any]) -> bool:
    return service.get("restart") == "no"


def as_argv(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    """The healthcheck as the argv a person would type (shell form split like a shell)."""
    test = service.get("healthcheck", {}).get("test", [])
    if isinstance(test, str):
        return shlex.split(test)
    if test[:1] == ["CMD-SHELL"]:
        return shlex.split(test[1])
    if test[:1] == ["CMD"]:
        return [str(part) for part in test[1:]]
    return []


def commands_of(service: Mapping[str, Any]) -> Iterator[list[str]]:
    """Every argv a service runs: entrypoint, command and healthcheck."""
    for key in ("entrypoint", "command"):
        if key in service:
            yield as_argv(service[key])
    argv = healthcheck_argv(service)
    if argv:
        yield argv


def our_commands(program: str) -> list[list[str]]:
    """Every argv starting with ``program`` in the services and the Dockerfile's CMD."""
    found = [argv for svc in our_services().values() for argv in commands_of(svc)]
    found.append(dockerfile_cmd())
    return [argv for argv in found if argv[:1] == [program]]


# --- Compose variable interpolation (the subset the spec defines) ---------------------------

REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


@dataclass(frozen=True)
class Reference:
    name: str
    op: str | None  # ":?" required, ":-" default, ... ; None for a bare ${NAME} or $NAME
    arg: str


class MissingVariableError(Exception):
    """What ``docker compose`` reports for an unset ``${NAME:?message}``."""


def references(text: str) -> list[Reference]:
    found = []
    for match in REFERENCE.finditer(text):
        if match["named"]:
            found.append(Reference(match["named"], None, ""))
        elif match["braced"] is not None:
            parts = BRACED.fullmatch(match["braced"])
            assert parts, f"not a Compose variable reference: ${{{match['braced']}}}"
            found.append(Reference(parts["name"], parts["op"], parts["arg"] or ""))
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        (ref,) = references(match[0])
        value = env.get(ref.name)
        unset_or_empty = not value if ref.op and ref.op.startswith(":") else value is None
        if ref.op in {":?", "?"} and unset_or_empty:
            raise MissingVariableError(f"{ref.name}: {ref.arg}")
        if ref.op in {":-", "-"} and unset_or_empty:
            return ref.arg
        if ref.op in {":+", "+"}:
            return "" if unset_or_empty else ref.arg
        return value or ""

    return REFERENCE.sub(substitute, text)


def strings_in(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)


def interpolate_compose_file(env: Mapping[str, str]) -> list[str]:
    return [interpolate(text, env) for text in strings_in(load_compose())]


def compose_references() -> list[Reference]:
    """Variable references in the compose file's values (comments are not read by compose)."""
    return [ref for text in strings_in(load_compose()) for ref in references(text)]


def shared_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The ``x-ptnudge-env`` block as a container would receive it."""
    block = load_compose()["x-ptnudge-env"]
    return {name: interpolate(str(value), env) for name, value in block.items()}


# --- Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions() -> list[Instruction]:
    """Instructions with comment lines dropped and ``\\`` continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if pending or line:
            logical.append(pending + line)
        pending = ""
    return [
        Instruction(keyword.upper(), arguments.strip())
        for keyword, _, arguments in (line.partition(" ") for line in logical)
    ]


def dockerfile_stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, "a Dockerfile starts with FROM (after ARG or comments)"
        stages[-1].append(instruction)
    return stages


def final_stage() -> list[Instruction]:
    return dockerfile_stages()[-1]


def dockerfile_cmd() -> list[str]:
    cmds = [i.arguments for i in final_stage() if i.keyword == "CMD"]
    assert cmds, "the final stage needs a default CMD"
    argv = json.loads(cmds[-1])
    assert isinstance(argv, list), "CMD in exec form (a JSON array) so signals reach the app"
    return [str(part) for part in argv]


# --- the compose file ------------------------------------------------------------------------


def test_compose_file_is_valid_under_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))

    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(load_compose())
    ]

    assert errors == []


def test_schema_validation_catches_a_misspelt_service_key() -> None:
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    document = copy.deepcopy(load_compose())
    document["services"]["web"]["healtcheck"] = document["services"]["web"].pop("healthcheck")

    errors = list(validator.iter_errors(document))

    assert any("healtcheck" in error.message for error in errors)


def test_every_service_has_a_healthcheck_or_is_one_shot() -> None:
    unchecked = [
        name
        for name, svc in services().items()
        if not is_one_shot(svc) and not healthcheck_argv(svc)
    ]

    assert unchecked == []


def test_one_shot_services_are_awaited_until_they_complete() -> None:
    everything = services()
    one_shots = [name for name, svc in everything.items() if is_one_shot(svc)]
    assert one_shots == ["migrate"]

    for one_shot in one_shots:
        conditions = [
            svc["depends_on"][one_shot]["condition"]
            for svc in everything.values()
            if one_shot in svc.get("depends_on", {})
        ]
        assert conditions, f"nothing waits for {one_shot}: it would race the services"
        assert set(conditions) == {COMPLETED}, f"{one_shot} must finish before its dependents"


def test_every_dependency_waits_on_a_condition_its_target_can_meet() -> None:
    everything = services()
    for name, svc in everything.items():
        depends_on = svc.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: the list form of depends_on has no condition"
        for target, options in depends_on.items():
            condition = options.get("condition")
            if condition == HEALTHY:
                assert healthcheck_argv(everything[target]), f"{name}: {target} has no healthcheck"
            elif condition == COMPLETED:
                assert is_one_shot(everything[target]), f"{name}: {target} is not one-shot"
            else:
                pytest.fail(f"{name} -> {target}: condition {condition!r} waits for nothing")


def test_required_variables_stop_compose_with_a_message_when_unset() -> None:
    refs = compose_references()
    assert {ref.name for ref in refs} >= REQUIRED_VARIABLES

    for ref in refs:
        if ref.name in REQUIRED_VARIABLES or SECRET_LIKE.search(ref.name):
            assert ref.op == ":?", f"${{{ref.name}}} must be written ${{{ref.name}:?message}}"
            assert ref.arg.strip(), f"${{{ref.name}:?}} needs a message that says what to set"


@pytest.mark.parametrize("missing", sorted(REQUIRED_VARIABLES))
def test_a_missing_required_variable_is_reported_by_name(missing: str) -> None:
    env = {name: value for name, value in FILLED_IN_ENV.items() if name != missing}

    with pytest.raises(MissingVariableError, match=f"^{missing}: .+"):
        interpolate_compose_file(env)


def test_beat_runs_exactly_one_replica() -> None:
    beat = services()["beat"]

    assert beat["deploy"]["replicas"] == 1
    assert beat.get("scale", 1) == 1


def test_python_services_run_one_image_built_here_with_the_shared_environment() -> None:
    shared = load_compose()["x-ptnudge-env"]
    ours = our_services()

    assert set(ours) == PYTHON_SERVICES
    for name, svc in ours.items():
        assert svc["build"] == ".", name
        env = svc["environment"]
        assert {key: env.get(key) for key in shared} == shared, f"{name} must use x-ptnudge-env"
        extra = set(env) - set(shared)
        known = {str(field.validation_alias) for field in Settings.model_fields.values()}
        assert extra <= known | {"PROMETHEUS_MULTIPROC_DIR"}, f"{name}: unknown {extra - known}"


def test_shared_environment_names_only_settings_that_exist() -> None:
    known = {str(field.validation_alias) for field in Settings.model_fields.values()}

    assert set(load_compose()["x-ptnudge-env"]) - known == set()


def test_filled_in_environment_is_accepted_by_production_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from_container_env(monkeypatch, FILLED_IN_ENV)

    assert settings.env == "production"
    assert settings.public_url == FILLED_IN_ENV["PTNUDGE_PUBLIC_URL"]
    assert settings.database_url.startswith("postgresql+psycopg://ptnudge:")
    assert settings.broker_url == "redis://redis:6379/0"
    assert settings.sms_enabled
    assert settings.twilio_handles_opt_out_replies is True
    assert settings.tick_seconds == 15
    assert settings.email_enabled


def test_unset_optional_variables_reach_settings_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Compose turns an unset ${VAR:-} into an empty string in the container; Settings must
    # read that as "not set" (pydantic-settings env_ignore_empty=True), or a transport would
    # send messaging_service_sid="" to Twilio and email would go out from "".
    settings = settings_from_container_env(monkeypatch, FILLED_IN_ENV)

    assert settings.twilio_messaging_service_sid is None
    assert settings.programs_dir is None


def settings_from_container_env(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]
) -> Settings:
    """Settings as a container would build them: from exactly the shared environment."""
    for name in [*load_compose()["x-ptnudge-env"], "PTNUDGE_SMS_BACKEND"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in shared_environment(env).items():
        monkeypatch.setenv(name, value)
    return load_settings(_env_file=None)


def test_database_and_broker_urls_point_at_the_compose_services() -> None:
    env = shared_environment(FILLED_IN_ENV)
    database = make_url(env["PTNUDGE_DATABASE_URL"])
    postgres = services()["postgres"]["environment"]

    assert database.drivername == "postgresql+psycopg"
    assert (database.host, database.port) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.database == postgres["POSTGRES_DB"]
    assert database.password == FILLED_IN_ENV["POSTGRES_PASSWORD"]
    assert env["PTNUDGE_BROKER_URL"].startswith("redis://redis:6379/")


def test_redis_persists_the_queue_and_never_evicts_it() -> None:
    argv = as_argv(services()["redis"]["command"])

    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in services()["redis"]["volumes"])


def test_published_ports_listen_on_loopback_only() -> None:
    # TLS ends at a reverse proxy on the host; nothing is exposed to the network directly.
    published = [
        (name, str(port)) for name, svc in services().items() for port in svc.get("ports", [])
    ]

    assert published
    assert [(name, port) for name, port in published if not port.startswith("127.0.0.1:")] == []


def test_python_healthchecks_are_valid_python() -> None:
    snippets = [
        (name, argv[argv.index("-c") + 1])
        for name, svc in services().items()
        if (argv := healthcheck_argv(svc))[:1] == ["python"]
    ]

    assert {name for name, _ in snippets} >= {"web", "beat"}
    for name, code in snippets:
        compile(code, f"<{name} healthcheck>", "exec")


# --- commands name code that exists ----------------------------------------------------------


def test_ptnudge_console_script_is_declared() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]

    assert project["scripts"]["ptnudge"] == "service.cli:main"


def test_ptnudge_commands_name_existing_cli_subcommands() -> None:
    commands = our_commands("ptnudge")
    assert commands, "migrate runs `ptnudge db upgrade`"
    cli = import_or_fail("service.cli", "the admin CLI (`ptnudge`)")
    assert callable(getattr(cli, "main", None)), (
        "service.cli defines no `main`: pyproject's console script is service.cli:main"
    )
    app = getattr(cli, "app", None)
    assert isinstance(app, typer.Typer), "service.cli must define the Typer `app`"
    root = typer.main.get_command(app)

    for argv in commands:
        assert cli_command_path(root, argv[1:]), argv


def cli_command_path(root: object, args: list[str]) -> list[str]:
    """Follow ``args`` down the command groups; fail unless they end at a real command."""
    command, path = root, list[str]()
    for arg in args:
        if not isinstance(command, typer.core.TyperGroup) or arg.startswith("-"):
            break
        sub = command.commands.get(arg)
        if sub is None:
            available = ", ".join(sorted(command.commands))
            pytest.fail(f"`ptnudge {' '.join([*path, arg])}` does not exist (has: {available})")
        command, path = sub, [*path, arg]
    if isinstance(command, typer.core.TyperGroup):
        pytest.fail(f"`ptnudge {' '.join(path)}` is a group: it needs a subcommand")
    return path


def test_celery_commands_name_the_celery_app() -> None:
    commands = our_commands("celery")
    apps = {argv[argv.index("-A") + 1] for argv in commands}
    assert apps == {"tasks.app"}, "worker, beat and the worker healthcheck use -A tasks.app"
    import_or_fail("tasks.app", "the Celery app module")

    for name in apps:
        # Celery's own lookup: module tasks.app, then its attribute `app`.
        assert isinstance(find_app(name), Celery), f"`celery -A {name}` finds no Celery app"


def worker_queues() -> dict[str, set[str]]:
    """Each service that runs a Celery worker, and the queues it consumes (``--queues``)."""
    found = {}
    for name, service in our_services().items():
        argv = as_argv(service.get("command", []))
        if argv[:1] == ["celery"] and "worker" in argv:
            given = argv[argv.index("--queues") + 1] if "--queues" in argv else ""
            found[name] = set(given.split(",")) if given else set()
    return found


def test_every_queue_has_a_worker_and_sends_never_hold_up_beats_tasks() -> None:
    from tasks.app import CONTROL_QUEUE  # noqa: PLC0415 - builds the app from the environment

    consumed = worker_queues()

    assert all(consumed.values()), f"a worker without --queues takes every queue: {consumed}"
    assert set().union(*consumed.values()) == {SEND_QUEUE, CONTROL_QUEUE}
    assert [name for name, queues in consumed.items() if CONTROL_QUEUE in queues] == [
        "control-worker"
    ]
    assert consumed["worker"] == {SEND_QUEUE}


def test_uvicorn_commands_name_the_web_app() -> None:
    commands = our_commands("uvicorn")
    targets = {argv[1] for argv in commands}
    assert targets == {"service.web:app"}, "compose's web and the Dockerfile's CMD agree"
    import_or_fail("service.web", "the FastAPI web app")

    for target in targets:
        assert isinstance(import_from_string(target), FastAPI), target


def test_web_healthcheck_probes_a_route_the_app_serves() -> None:
    (code,) = [a for a in healthcheck_argv(services()["web"]) if "urlopen" in a]
    url_path = re.search(r"http://127\.0\.0\.1:8000(/[^'\"]*)", code)
    assert url_path, "the web healthcheck calls its own port"
    import_or_fail("service.web", "the FastAPI web app")
    app = import_from_string("service.web:app")

    paths = {getattr(route, "path", None) for route in app.routes}

    assert url_path[1] in paths


def import_or_fail(module: str, what: str) -> Any:
    """Import a module the deployment names, failing with a message instead of a traceback."""
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} ({what}) does not exist, but docker-compose.yml runs it")
    return importlib.import_module(module)


# --- Dockerfile and build context ------------------------------------------------------------


def test_dockerfile_final_stage_runs_a_slim_python_image() -> None:
    base = final_stage()[0].arguments.split()[0]

    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base


def test_dockerfile_builds_in_more_than_one_stage() -> None:
    assert len(dockerfile_stages()) >= 2


def test_dockerfile_final_stage_runs_as_a_non_root_user() -> None:
    users = [i.arguments for i in final_stage() if i.keyword == "USER"]

    assert users, "the final stage must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(
        "useradd" in i.arguments and users[-1] in i.arguments.split()
        for i in final_stage()
        if i.keyword == "RUN"
    ), f"the final stage creates the user {users[-1]}"


def test_dockerfile_final_stage_installs_no_build_tools() -> None:
    build_tools = re.compile(
        r"\b(gcc|g\+\+|clang|make|cmake|build-essential)\b|\S+-dev\b|apt-get\s+install"
    )
    runs = [i.arguments for i in final_stage() if i.keyword == "RUN"]

    assert [run for run in runs if build_tools.search(run)] == []


def test_dockerfile_final_stage_installs_only_the_built_wheels() -> None:
    installs = [i.arguments for i in final_stage() if "pip install" in i.arguments]

    assert len(installs) == 1
    assert "--no-cache-dir" in installs[0]
    assert "--no-index" in installs[0]
    assert "/wheels/" in installs[0]


def dockerignore_patterns() -> set[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def test_docker_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = dockerignore_patterns()

    assert {".env", ".env.*", ".git", ".venv", "*.db"} <= ignored


def test_dockerfile_copies_only_files_the_build_context_keeps() -> None:
    ignored = dockerignore_patterns()
    copies = [
        i.arguments.split()
        for stage in dockerfile_stages()
        for i in stage
        if i.keyword == "COPY" and "--from=" not in i.arguments
    ]

    sources = [source for args in copies for source in args[:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        matched = [pattern for pattern in ignored if fnmatch.fnmatch(source, pattern)]
        assert matched == [], f"{source} is left out of the build context by .dockerignore"


def test_every_data_file_is_package_data_so_the_wheel_carries_it() -> None:
    # The image installs only the wheel: a template or program file that setuptools does not
    # pick up would exist in the repository and be missing in production.
    setuptools = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]
    missing = []
    for package, patterns in setuptools["package-data"].items():
        shipped = {path for pattern in patterns for path in (ROOT / package).glob(pattern)}
        data = {
            path
            for path in (ROOT / package).rglob("*")
            if path.is_file()
            and path.suffix not in {".py", ".pyc"}
            and "__pycache__" not in path.parts
        }
        missing += [str(path.relative_to(ROOT)) for path in data - shipped]

    assert sorted(missing) == []
    assert list((ROOT / "config" / "programs").glob("*.yaml")), "programs ship with the package"


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_mentions_every_variable_the_compose_file_reads() -> None:
    if not ENV_EXAMPLE.exists():
        pytest.fail(".env.example does not exist; operators copy it to .env (docs/deploy.md)")
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"^[#\s]*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))

    assert {ref.name for ref in compose_references()} - mentioned == set()
