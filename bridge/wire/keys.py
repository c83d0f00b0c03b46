"""CURVE key management for the bridge: ``python -m bridge.keys generate DIR --name NAME``.

Layout the server expects for ``--curve-keys DIR``::

    DIR/server.key          server public key (give it to every client)
    DIR/server.key_secret   server secret key (stays on the server)
    DIR/authorized/*.key    public keys of the clients allowed to connect (the allow-list)

Typical setup::

    python -m bridge.keys generate keys --name server
    python -m bridge.keys generate ea1keys --name ea1 --authorize keys/authorized
    python -m bridge.serve --curve-keys keys
    python -m bridge.client --server-key keys/server.key --client-key ea1keys/ea1.key_secret ping
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bridge.cli import HelpFormatter
from bridge.errors import UserError, run_main


def generate(directory: str | Path, name: str, authorize: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` in ``directory``; optionally copy the public key to an
    allow-list folder. Refuses to overwrite an existing key pair."""
    import zmq.auth

    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise UserError(f"key name {name!r} must be letters, digits, - or _")
    directory = Path(directory)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise UserError(
            "key pair already exists", path=public, hint="choose another --name or remove the old pair"
        )
    directory.mkdir(parents=True, exist_ok=True)
    pub_file, sec_file = zmq.auth.create_certificates(str(directory), name)
    Path(sec_file).chmod(0o600)
    if authorize is not None:
        allowed = Path(authorize)
        allowed.mkdir(parents=True, exist_ok=True)
        shutil.copy(pub_file, allowed / f"{name}.key")
    return Path(pub_file), Path(sec_file)


def main(argv=None) -> int:
    """``python -m bridge.keys``: create CURVE key pairs for the server and its clients."""
    ap = argparse.ArgumentParser(
        prog="python -m bridge.keys",
        description="CURVE keys for the bridge server and its clients.",
        formatter_class=HelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    gp = sub.add_parser("generate", help="write NAME.key and NAME.key_secret into DIR")
    gp.add_argument("dir", help="directory for the key pair")
    gp.add_argument("--name", default="server", help="key name; the server's pair must be called 'server'")
    gp.add_argument(
        "--authorize", default=None, help="also copy the public key into this allow-list directory"
    )
    args = ap.parse_args(argv)
    pub, sec = generate(args.dir, args.name, args.authorize)
    print(f"public key: {pub}\nsecret key: {sec} (keep it private)")
    if args.authorize:
        print(f"authorised in: {args.authorize}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
