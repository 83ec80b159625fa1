"""docker/Dockerfile and docker-compose.yml agree with the code they run.

No Docker engine is needed: the files are read as text and YAML and checked against the repository,
devstack's service table and the services' settings classes.
"""

import importlib
import importlib.util
import logging
import os
import re
import shlex
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devstack.stack import DEFAULT_PORTS, SERVICES  # noqa: E402

DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = list(SERVICES)  # auth, wallet, catalog, gateway
CODE_FOLDERS = {"shared", "services", "gateway"}
DUMMY_SERVICE_API_KEY = "d" * 32  # long enough for ServiceSettings' placeholder check

# The settings class each service's main module instantiates as `settings`.
SETTINGS_CLASSES = {
    "auth": ("services.auth.settings", "AuthSettings"),
    "wallet": ("shared.settings", "ServiceSettings"),
    "catalog": ("services.catalog.main", "CatalogSettings"),
    "gateway": ("gateway.main", "GatewaySettings"),
}
EXPECTED_DEPENDENCIES = {
    "auth": {"redis"},
    "wallet": {"redis"},
    "catalog": {"redis"},
    "gateway": {"auth", "wallet", "catalog"},
}
REDIS_DEFAULT_PORT = 6379


# ---- reading the files -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def copy_sources(arguments: str) -> list[str]:
    """The sources of one COPY (the last word is the destination; --flags are dropped)."""
    words = [word for word in shlex.split(arguments) if not word.startswith("--")]
    assert len(words) >= 2, f"COPY {arguments!r} needs a source and a destination"
    return words[:-1]


def copies() -> list[tuple[int, list[str]]]:
    return [(index, copy_sources(args)) for index, (keyword, args) in enumerate(dockerfile_instructions())
            if keyword in ("COPY", "ADD")]


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict:
    return compose()["services"][name]


def command_words(name: str) -> list[str]:
    command = service(name)["command"]
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def option(words: list[str], flag: str) -> str | None:
    for index, word in enumerate(words):
        if word == flag and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def uvicorn_module(name: str) -> str:
    words = command_words(name)
    assert words[0] == "uvicorn", f"{name} does not run uvicorn: {words}"
    return next(word for word in words[1:] if not word.startswith("-") and ":" in word)


def listen_port(name: str) -> int:
    """The port a compose service listens on inside its container."""
    port = option(command_words(name), "--port")
    if port is None and name == "redis":
        return REDIS_DEFAULT_PORT
    assert port is not None, f"{name} has no --port in its command"
    return int(port)


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):  # the KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, shell: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, against the given shell variables."""

    def replace(match: re.Match) -> str:
        name, op = match["name"], match["op"] or ""
        if shell.get(name):
            return shell[name]
        if op.endswith("-"):
            return match["arg"]
        if op.endswith("?"):
            raise LookupError(f"{name} is required: {match['arg']}")
        return ""

    return INTERPOLATION.sub(replace, value)


def published_ports(name: str) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) per `ports` entry."""
    found = []
    for entry in service(name).get("ports", []):
        if isinstance(entry, dict):
            found.append((entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        found.append((host_ip, int(parts[-2]), int(parts[-1])))
    return found


def healthcheck_words(name: str) -> list[str]:
    test = service(name).get("healthcheck", {}).get("test")
    assert test, f"{name} has no healthcheck"
    return shlex.split(test) if isinstance(test, str) else [str(word) for word in test]


@cache
def settings_class(name: str):
    """The service's settings class. Importing a main module builds its settings and its app, so
    the import runs with a dummy SERVICE_API_KEY and the logging it reconfigures is put back."""
    module_name, class_name = SETTINGS_CLASSES[name]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    previous_key = os.environ.get("SERVICE_API_KEY")
    os.environ["SERVICE_API_KEY"] = DUMMY_SERVICE_API_KEY
    try:
        module = importlib.import_module(module_name)
    finally:
        if previous_key is None:
            os.environ.pop("SERVICE_API_KEY", None)
        else:
            os.environ["SERVICE_API_KEY"] = previous_key
        root.handlers[:] = handlers
        root.setLevel(level)
    return getattr(module, class_name)


def module_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{module} cannot be found"
    return Path(spec.origin)


def package_sources(name: str) -> str:
    """The Python source of the package a service's module lives in (services.auth, gateway, ...)."""
    package_dir = module_file(SERVICES[name].split(":")[0]).parent
    return "\n".join(path.read_text() for path in sorted(package_dir.rglob("*.py")))


# ---- the Dockerfile ----------------------------------------------------------------------------


def test_the_dockerfile_builds_on_python_3_11_slim():
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert froms and froms[0].split()[0] == "python:3.11-slim"


@pytest.mark.parametrize("source", sorted({s for _, sources in copies() for s in sources}))
def test_every_path_the_dockerfile_copies_exists_in_the_repo(source):
    assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def test_the_dockerfile_copies_the_lock_file_and_only_the_code_folders():
    copied = {source.rstrip("/") for _, sources in copies() for source in sources}
    assert copied == CODE_FOLDERS | {"requirements.lock"}


def test_the_dockerfile_copies_every_package_the_services_are_started_from():
    copied = {source.rstrip("/") for _, sources in copies() for source in sources}
    packages = {module.split(".")[0] for module in SERVICES.values()} | {"shared"}
    assert packages <= copied, f"not copied: {packages - copied}"


def test_the_dockerfile_installs_requirements_lock_before_copying_the_code():
    instructions = dockerfile_instructions()
    lock_copied = next(i for i, sources in copies() if "requirements.lock" in [s.lstrip("./") for s in sources])
    installs = [
        i for i, (keyword, args) in enumerate(instructions)
        if keyword == "RUN" and re.search(r"pip install\b.*--no-cache-dir.*-r\s+\S*requirements\.lock", args)
    ]
    code_copied = [i for i, sources in copies() if {s.rstrip("/") for s in sources} & CODE_FOLDERS]
    assert installs, "no `pip install --no-cache-dir -r requirements.lock`"
    assert code_copied, "the Dockerfile copies none of the code folders"
    assert lock_copied < installs[0] < min(code_copied)
    late = [args for keyword, args in instructions[min(code_copied):] if keyword == "RUN" and "pip install" in args]
    assert not late, f"pip install after the code is copied rebuilds the dependency layer on every change: {late}"


def test_the_dockerfile_works_in_app():
    workdirs = [args for keyword, args in dockerfile_instructions() if keyword == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/app"


def test_the_dockerfile_runs_the_services_as_a_non_root_user():
    instructions = dockerfile_instructions()
    users = [(i, args.split(":")[0]) for i, (keyword, args) in enumerate(instructions) if keyword == "USER"]
    assert users, "the Dockerfile has no USER"
    last_index, user = users[-1]
    assert user not in ("root", "0"), f"USER {user} is root"
    assert all(keyword != "RUN" for keyword, _ in instructions[last_index + 1:]), "RUN after the final USER"


def test_the_auth_keys_directory_in_the_image_belongs_to_the_non_root_user():
    """A named volume starts as a copy of the image's directory, owner included: without this the
    auth service could not write its first signing key."""
    keys_dir = environment("auth")["KEYS_DIR"]
    runs = " ".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    assert re.search(rf"mkdir\s+(-p\s+)?{re.escape(keys_dir)}(\s|$)", runs), f"{keys_dir} is not created"
    assert re.search(rf"chown\s+\S+\s+{re.escape(keys_dir)}(\s|$)", runs), f"{keys_dir} is not handed to the user"


# ---- docker-compose.yml: the processes ---------------------------------------------------------


def test_compose_runs_redis_and_exactly_the_services_devstack_runs():
    assert set(compose()["services"]) == {"redis", *APP_SERVICES}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_is_built_from_the_shared_dockerfile(name):
    build = service(name).get("build")
    assert isinstance(build, dict), f"{name} has no build section"
    context = ROOT / build.get("context", ".")
    assert context.resolve() == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_runs_the_module_devstack_runs_for_it(name):
    assert uvicorn_module(name) == SERVICES[name]
    words = command_words(name)
    assert option(words, "--host") == "0.0.0.0"
    assert "--no-access-log" in words


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_uvicorn_module_is_a_python_file_that_defines_app(name):
    module, attribute = uvicorn_module(name).split(":")
    path = module_file(module)
    assert path.is_file() and path.suffix == ".py"
    assert path.resolve().is_relative_to(ROOT), f"{module} resolves outside the repository: {path}"
    assert re.search(rf"^{attribute}\s*=", path.read_text(), re.MULTILINE), f"{path} defines no `{attribute} =`"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_listens_on_its_devstack_port(name):
    assert listen_port(name) == DEFAULT_PORTS[name]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_publishes_the_port_it_listens_on_only_on_localhost(name):
    ports = published_ports(name)
    assert ports, f"{name} publishes no port"
    for host_ip, host_port, container_port in ports:
        assert host_ip == "127.0.0.1", f"{name} is published on {host_ip or 'every address'}"
        assert container_port == host_port == listen_port(name)


def test_redis_is_not_published_on_the_host():
    assert not service("redis").get("ports")


# ---- docker-compose.yml: health and start order ------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_health_checks_its_own_probe_on_its_own_port(name):
    words = healthcheck_words(name)
    assert words[0] == "CMD" and words[1] == "python", f"{name}: the slim image has python but no curl"
    probes = re.findall(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/healthz|/readyz)\b", " ".join(words))
    assert probes, f"{name}'s healthcheck calls neither /healthz nor /readyz"
    assert {int(port) for port, _ in probes} == {listen_port(name)}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_healthcheck_is_a_python_program_that_compiles(name):
    words = healthcheck_words(name)
    compile(words[words.index("-c") + 1], f"<{name} healthcheck>", "exec")


def test_redis_is_health_checked_with_a_ping():
    assert healthcheck_words("redis")[-2:] == ["redis-cli", "ping"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_app_service_waits_for_its_dependencies_to_be_healthy(name):
    depends_on = service(name).get("depends_on")
    assert isinstance(depends_on, dict), f"{name}: depends_on needs the long form to carry a condition"
    assert set(depends_on) == EXPECTED_DEPENDENCIES[name]
    for dependency, rule in depends_on.items():
        assert rule.get("condition") == "service_healthy", f"{name} does not wait for {dependency} to be healthy"
        assert "healthcheck" in service(dependency), f"{dependency} has no healthcheck to wait for"


# ---- docker-compose.yml: Redis -----------------------------------------------------------------


def test_redis_keeps_every_write_on_disk_and_never_evicts():
    words = command_words("redis")
    assert words[0] == "redis-server"
    assert option(words, "--appendonly") == "yes"
    assert option(words, "--appendfsync") == "always"
    assert option(words, "--maxmemory-policy") == "noeviction"


def test_redis_keeps_its_data_in_a_named_volume():
    assert service("redis")["image"] == "redis:7-alpine"
    mounts = dict(str(volume).split(":")[:2][::-1] for volume in service("redis").get("volumes", []))
    assert "/data" in mounts
    assert mounts["/data"] in (compose().get("volumes") or {})


# ---- docker-compose.yml: settings --------------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_settings_class_mapped_to_each_service_is_the_one_its_main_module_instantiates(name):
    source = module_file(SERVICES[name].split(":")[0]).read_text()
    assert re.search(rf"^settings = {SETTINGS_CLASSES[name][1]}\(\)", source, re.MULTILINE)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_environment_variable_of_a_service_is_one_of_its_settings(name):
    fields = {field.lower() for field in settings_class(name).model_fields}
    unknown = {variable for variable in environment(name) if variable.lower() not in fields}
    assert environment(name), f"{name} sets no environment"
    assert not unknown, f"{name} would silently ignore {sorted(unknown)} (not fields of {settings_class(name).__name__})"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_compose_environment_passes_each_services_settings_validation(name):
    values = {
        variable.lower(): interpolate(value, {"SERVICE_API_KEY": DUMMY_SERVICE_API_KEY})
        for variable, value in environment(name).items()
    }
    settings = settings_class(name)(**values)
    for field, value in values.items():
        parsed = getattr(settings, field)
        parsed = parsed.get_secret_value() if hasattr(parsed, "get_secret_value") else parsed
        assert str(parsed) == value


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_url_setting_points_at_the_compose_service_of_that_name_and_its_port(name):
    urls = {variable: value for variable, value in environment(name).items() if variable.upper().endswith("_URL")}
    assert urls, f"{name} sets no *_URL"
    for variable, value in urls.items():
        target = variable.upper().removesuffix("_URL").lower()
        parsed = urlsplit(value)
        assert target in compose()["services"], f"{variable}: there is no compose service {target!r}"
        assert parsed.hostname == target, f"{variable}={value} does not name the {target} service"
        assert parsed.port == listen_port(target), f"{variable}={value}: {target} listens on {listen_port(target)}"
        assert parsed.scheme == ("redis" if target == "redis" else "http")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_url_setting_a_service_reads_is_set_so_none_stays_at_its_localhost_default(name):
    source = package_sources(name)
    read = {field.upper() for field in re.findall(r"settings\.(\w+_url)\b", source)}
    if "connect_redis(" in source:
        read.add("REDIS_URL")
    assert read, f"found no URL setting read by {name}"
    missing = read - {variable.upper() for variable in environment(name)}
    assert not missing, f"{name} reads {sorted(missing)} but compose leaves them at 127.0.0.1"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_service_requires_the_service_api_key_from_the_shell(name):
    value = environment(name).get("SERVICE_API_KEY", "")
    assert re.fullmatch(r"\$\{SERVICE_API_KEY:\?[^}]+\}", value), f"{name}: SERVICE_API_KEY={value!r}"
    with pytest.raises(LookupError):
        interpolate(value, {})


def test_auth_keeps_its_signing_keys_in_the_auth_keys_volume_at_keys_dir():
    keys_dir = environment("auth")["KEYS_DIR"]
    assert keys_dir.startswith("/"), "a relative KEYS_DIR lands in the read-only /app"
    assert f"auth-keys:{keys_dir}" in service("auth").get("volumes", [])
    assert "auth-keys" in (compose().get("volumes") or {})


@pytest.mark.parametrize("name", ["gateway", "wallet"])
def test_debug_listings_is_taken_from_the_shell_and_open_by_default_on_gateway_and_wallet(name):
    value = environment(name).get("DEBUG_LISTINGS")
    assert value == "${DEBUG_LISTINGS:-open}"
    assert interpolate(value, {}) == "open"
    assert interpolate(value, {"DEBUG_LISTINGS": "admin"}) == "admin"


# ---- docker-compose.scaled.yml: two processes of every service -------------------------------

SCALED_FILE = ROOT / "docker-compose.scaled.yml"


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's `!reset` tag (it empties what the extended service had)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: [])


def scaled() -> dict:
    return yaml.load(SCALED_FILE.read_text(), Loader=_ComposeLoader)


def scaled_service_names() -> set[str]:
    return set(compose()["services"]) | set(scaled()["services"])


@pytest.mark.parametrize("name", APP_SERVICES[:-1])
def test_the_scaled_file_adds_an_unpublished_replica_of_each_service_extending_the_original(name):
    replica = scaled()["services"][f"{name}-2"]
    assert replica["extends"] == {"file": "docker-compose.yml", "service": name}
    assert replica["ports"] == []
    assert replica["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", list(scaled()["services"]) if SCALED_FILE.exists() else [])
def test_every_replica_url_in_the_scaled_file_names_a_service_and_its_port(name):
    original = name.removesuffix("-2")
    env = scaled()["services"][name].get("environment", {})
    fields = {field.upper() for field in settings_class(original).model_fields}
    for variable, value in env.items():
        assert variable in fields, f"{name} sets {variable}, which {original} does not read"
        target = variable.removesuffix("_URL").lower()
        for url in value.split(","):
            parts = urlsplit(url)
            assert parts.hostname in scaled_service_names() and parts.hostname.removesuffix("-2") == target
            assert parts.port == listen_port(target)
