"""Start JupyterLab on the notebooks for `./dev notebooks`: on 127.0.0.1 only, with this project's
kernel (.venv, registered once as `switchboard`) and the dashboard's store and key.

The dashboard (`./dev serve`) finds its store and key from SWITCHBOARD_STORE / SWITCHBOARD_KEY_FILE or
their defaults (`core.config.load_settings`); this resolves them the same way and hands them to
JupyterLab's environment, which every kernel it starts inherits, so a notebook works on the store
the dashboard shows. SWITCHBOARD_KEY, when set, is inherited as is and never printed.

    python notebooks/lab.py [--dry-run] [JupyterLab options, e.g. --port 8899 --no-browser]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.config import KEY_FILE_ENV, STORE_ENV, load_settings

NOTEBOOKS = Path(__file__).resolve().parent
KERNEL = "switchboard"
KERNEL_LABEL = "Switchboard (.venv)"


def plan(argv: list[str], environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The JupyterLab command and its environment (the dashboard's store and key file)."""
    settings = load_settings(environ)
    env = {**environ, STORE_ENV: str(settings.store_path), KEY_FILE_ENV: str(settings.key_file)}
    # `nbsupport` (imported by the notebooks) and the project's packages resolve from the repository.
    root = str(NOTEBOOKS.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, environ.get("PYTHONPATH", "")) if p)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={NOTEBOOKS}",
        f"--MappingKernelManager.default_kernel_name={KERNEL}",
        # Containers and CI machines run as root; the server listens on loopback behind its token.
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
        *argv,
    ]
    return command, env


def ensure_kernel() -> None:
    """Register this interpreter as the `switchboard` kernel inside .venv (once)."""
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json"
    if not spec.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ipykernel",
                "install",
                "--sys-prefix",
                "--name",
                KERNEL,
                "--display-name",
                KERNEL_LABEL,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main(argv: list[str]) -> int:
    dry_run = "--dry-run" in argv
    command, env = plan([a for a in argv if a != "--dry-run"], dict(os.environ))
    print(f"store: {env[STORE_ENV]}\nkey file: {env[KEY_FILE_ENV]}\nkernel: {KERNEL}", file=sys.stderr)
    if dry_run:
        print(" ".join(command))
        return 0
    ensure_kernel()
    os.execve(sys.executable, command, env)  # JupyterLab replaces this process (Ctrl-C stops it)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
