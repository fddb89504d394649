"""Client keys of the secure wire (docs/protocol.md sections 2.1 and 6).

A key is a CURVE pair enrolled at the principal plus the principal's public key, which the client
pins. It lives in a JSON key file (mode 0600) with ``name``, ``role``, ``scope``, ``publicKey``,
``secretKey`` and ``principalPublicKey`` (Z85, 40 characters each). A client finds its key the
way every cdktr client does: the ``key`` given in code, else the file named by
``CDKTR_KEY_FILE``, else ``<CDKTR_KEYS_DIR or ~/.cdktr/keys>/<local key>.json`` when it exists,
else none (plaintext: only a principal with ``CDKTR_AUTH=off`` answers); ``CDKTR_AUTH=off``
means none.

X25519 (RFC 7748) is written out in pure Python so that nothing but pyzmq is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Union

import zmq
from zmq.utils import z85

from .errors import KeyFileError

#: Label of the ``hello`` proof (part of the MAC input, so a proof is never valid elsewhere).
HELLO_PROOF_LABEL = "cdktr-hello/1"
#: Label of a subscription proof on the publish channel.
SUBSCRIBE_PROOF_LABEL = "cdktr-subscribe/1"
#: What starts a proven subscription: ``"!auth " + publicKey + " " + proof + " " + topic``.
SUBSCRIPTION_AUTH_PREFIX = "!auth "

#: The local key a :class:`~cdktr.Principal` (and a :class:`~cdktr.Subscriber`) looks for.
OPERATOR_KEY_NAME = "local-operator"
#: The local key an :class:`~cdktr.EventListener` looks for (a ``trigger`` key).
LISTENER_KEY_NAME = "local-listeners"

_P = 2**255 - 19


def x25519(scalar: bytes, point: bytes) -> bytes:
    """RFC 7748 X25519 of a 32-byte secret key and a 32-byte public key (the shared secret).

    ``x25519(secret, (9).to_bytes(32, "little"))`` is the public key of ``secret``.
    """
    if len(scalar) != 32 or len(point) != 32:
        raise ValueError("x25519 takes two 32-byte keys")
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    n = int.from_bytes(bytes(k), "little")
    x1 = int.from_bytes(point, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (n >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b, c, d = x2 + z2, x2 - z2, x3 + z3, x3 - z3
        aa, bb, da, cb = a * a % _P, b * b % _P, d * a % _P, c * b % _P
        e = (aa - bb) % _P
        x3, z3 = (da + cb) ** 2 % _P, x1 * (da - cb) ** 2 % _P
        x2, z2 = aa * bb % _P, e * (aa + 121665 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def _mac(secret: bytes, *parts: str) -> str:
    """base64(HMAC-SHA256(secret, the newline-joined parts))."""
    return base64.b64encode(hmac.new(secret, "\n".join(parts).encode(), hashlib.sha256).digest()).decode()


def _z85_key(value: Any, field: str, where: str) -> str:
    """A 40-character Z85 key of 32 bytes, or KeyFileError naming the field."""
    if not isinstance(value, str) or len(value) != 40:
        raise KeyFileError("KEY_FILE_INVALID", f"{where}: {field}: expected a 40-character Z85 key")
    try:
        raw = z85.decode(value)
    except (ValueError, KeyError, IndexError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise KeyFileError("KEY_FILE_INVALID", f"{where}: {field}: not a Z85 key")
    return value


class ClientKey:
    """A client's key: its CURVE pair, its name and role, and the principal public key it pins.

    Build one with :meth:`from_dict` (the JSON of a key file), :func:`read_key_file` or
    :func:`find_key`. :meth:`curve` sets the CURVE options of any socket (DEALER or SUB);
    :meth:`hello_proof` and :meth:`subscribe` give the proofs of docs/protocol.md.
    """

    __slots__ = (
        "name",
        "role",
        "scope",
        "workflows",
        "public_key",
        "secret_key",
        "principal_public_key",
        "path",
        "_shared",
    )

    def __init__(
        self,
        name: str,
        public_key: str,
        secret_key: str,
        principal_public_key: str,
        role: Optional[str] = None,
        scope: Optional[str] = None,
        workflows: Optional[List[str]] = None,
        path: Optional[str] = None,
    ) -> None:
        where = f"key file {path}" if path is not None else f"key {name!r}"
        self.name = name
        self.public_key = _z85_key(public_key, "publicKey", where)
        self.secret_key = _z85_key(secret_key, "secretKey", where)
        self.principal_public_key = _z85_key(principal_public_key, "principalPublicKey", where)
        self.role = role
        self.scope = scope
        self.workflows = workflows
        #: The key file it was read from, if any.
        self.path = path
        self._shared: Optional[bytes] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Optional[str] = None) -> "ClientKey":
        """A key from the JSON object of a key file (``name``, ``publicKey``, ``secretKey``,
        ``principalPublicKey``; ``role``, ``scope`` and ``workflows`` are kept when present).

        Raises:
            KeyFileError: ``KEY_FILE_INVALID``, naming the field.
        """
        where = f"key file {path}" if path is not None else "key"
        if not isinstance(data, Mapping):
            raise KeyFileError("KEY_FILE_INVALID", f"{where}: expected a JSON object, got {type(data).__name__}")
        name = data.get("name")
        if not isinstance(name, str) or name == "":
            raise KeyFileError("KEY_FILE_INVALID", f"{where}: name: expected a non-empty string")
        role = data.get("role")
        if role == "principal":
            raise KeyFileError(
                "KEY_FILE_INVALID",
                f"{where} is the principal's own key, not a client key: use a client key "
                "(`cdktr keys create NAME --role ROLE`)",
            )
        workflows = data.get("workflows")
        return cls(
            name=name,
            public_key=data.get("publicKey"),  # type: ignore[arg-type]  # checked by _z85_key
            secret_key=data.get("secretKey"),  # type: ignore[arg-type]
            principal_public_key=data.get("principalPublicKey"),  # type: ignore[arg-type]
            role=role if isinstance(role, str) else None,
            scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
            workflows=list(workflows) if isinstance(workflows, list) else None,
            path=path,
        )

    def __repr__(self) -> str:  # never shows the secret key
        return f"ClientKey(name={self.name!r}, role={self.role!r}, public_key={self.public_key!r})"

    @property
    def shared_secret(self) -> bytes:
        """X25519(our secret key, the principal's public key): what keys the proofs' HMAC."""
        if self._shared is None:
            self._shared = x25519(z85.decode(self.secret_key), z85.decode(self.principal_public_key))
        return self._shared

    def curve(self, sock: zmq.Socket) -> zmq.Socket:
        """Set the CURVE options of ``sock`` (before ``connect``): the principal's public key
        pinned, our pair. Returns ``sock``."""
        sock.curve_serverkey = self.principal_public_key.encode()
        sock.curve_publickey = self.public_key.encode()
        sock.curve_secretkey = self.secret_key.encode()
        return sock

    def hello_proof(self, challenge: str) -> str:
        """The proof of the second ``hello``: an HMAC of the challenge and both public keys."""
        return _mac(self.shared_secret, HELLO_PROOF_LABEL, challenge, self.public_key, self.principal_public_key)

    def subscription(self, topic: str) -> bytes:
        """The proven subscription of ``topic``: ``"!auth " + publicKey + " " + proof + " " + topic``."""
        proof = _mac(self.shared_secret, SUBSCRIBE_PROOF_LABEL, topic)
        return f"{SUBSCRIPTION_AUTH_PREFIX}{self.public_key} {proof} {topic}".encode()


def auth_disabled(env: Optional[Mapping[str, str]] = None) -> bool:
    """Whether the environment turns authentication off (``CDKTR_AUTH=off``)."""
    env = os.environ if env is None else env
    return (env.get("CDKTR_AUTH") or "").strip().lower() == "off"


def _expand(path: str, env: Mapping[str, str]) -> str:
    home = env.get("HOME") or os.path.expanduser("~")
    if path == "~" or path.startswith("~/"):
        path = os.path.join(home, path[2:])
    return os.path.abspath(path)


def default_keys_dir(env: Optional[Mapping[str, str]] = None) -> str:
    """``CDKTR_KEYS_DIR`` (``~`` expanded), else ``~/.cdktr/keys``."""
    env = os.environ if env is None else env
    return _expand(env.get("CDKTR_KEYS_DIR") or os.path.join("~", ".cdktr", "keys"), env)


def read_key_file(path: Union[str, "os.PathLike[str]"]) -> ClientKey:
    """Read and check a client key file.

    Raises:
        KeyFileError: ``KEY_FILE_MISSING``, ``KEY_FILE_UNSAFE`` (group or others may read it: the
            message says ``chmod 600 <path>``) or ``KEY_FILE_INVALID`` (not JSON, or a field wrong).
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeyFileError(
            "KEY_FILE_MISSING",
            f"key file {path} does not exist: create one with `cdktr keys create` or fix CDKTR_KEY_FILE",
        ) from None
    except OSError as e:
        raise KeyFileError("KEY_FILE_INVALID", f"cannot read key file {path}: {e}") from None
    if os.name != "nt" and st.st_mode & 0o077:
        raise KeyFileError(
            "KEY_FILE_UNSAFE",
            f"key file {path} may be read by other users (mode {st.st_mode & 0o777:o}): run `chmod 600 {path}`",
        )
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise KeyFileError("KEY_FILE_INVALID", f"cannot read key file {path}: {e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise KeyFileError("KEY_FILE_INVALID", f"key file {path} is not JSON: {e}") from None
    return ClientKey.from_dict(data, path=path)


def find_key(local_name: str = OPERATOR_KEY_NAME, env: Optional[Mapping[str, str]] = None) -> Optional[ClientKey]:
    """The key a client on this machine uses, with no setting in the common case.

    ``CDKTR_AUTH=off``: None. Else the file named by ``CDKTR_KEY_FILE``; else
    ``<CDKTR_KEYS_DIR or ~/.cdktr/keys>/<local_name>.json`` when it exists (the principal makes
    the ``local-*`` keys on its first start); else None (plaintext).

    Raises:
        KeyFileError: the file named by ``CDKTR_KEY_FILE``, or the local file, cannot be used.
    """
    env = os.environ if env is None else env
    if auth_disabled(env):
        return None
    named = env.get("CDKTR_KEY_FILE")
    if named:
        return read_key_file(_expand(named, env))
    local = os.path.join(default_keys_dir(env), f"{local_name}.json")
    if not os.path.exists(local):
        return None
    return read_key_file(local)


#: What the ``key`` argument of the clients accepts.
KeyLike = Union[None, bool, ClientKey, Dict[str, Any], str, "os.PathLike[str]"]


def resolve_key(key: KeyLike, local_name: str) -> Optional[ClientKey]:
    """The ``key`` argument of a client as a key: None finds one (:func:`find_key`), False means
    plaintext, a dict is a key file's JSON, a string or path names a key file."""
    if key is None:
        return find_key(local_name)
    if key is False:
        return None
    if isinstance(key, ClientKey):
        return key
    if isinstance(key, Mapping):
        return ClientKey.from_dict(key)
    if isinstance(key, (str, os.PathLike)):
        return read_key_file(_expand(os.fspath(key), os.environ))
    raise TypeError(f"key: expected a dict, a key file path, a ClientKey, None or False, got {type(key).__name__}")
