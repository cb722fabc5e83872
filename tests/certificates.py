"""A self-signed certificate for a stand-in server on loopback, made with the openssl command
(`make os-packages` installs it)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(folder: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) for ``name`` (a host name or an address; 127.0.0.1 either way),
    valid for a day."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    names = f"IP:{name}" if name == "127.0.0.1" else f"DNS:{name},IP:127.0.0.1"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", f"/CN={name}", "-addext",
                    f"subjectAltName={names}"], check=True, capture_output=True)
    return cert, key
