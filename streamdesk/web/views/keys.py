"""Personal API keys, managed in the page: ``/api/keys``.

Who may call: the signed-in user of the page (its session, as every other ``/api`` route),
for their own keys only; a key itself cannot list, make or revoke keys. Registered only
while API_KEYS is on. The secret is in the answer that makes the key and nowhere else.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ...store import ApiKey, TooManyKeys
from ..errors import ApiError
from ..identity import current_user_id, known_user_id, owner_or
from ..serialize import iso
from ..services import services
from ..validation import check_storable, read_json_object

bp = Blueprint("keys", __name__, url_prefix="/api")

MAX_NAME_CHARS = 100


@bp.post("/keys")
def create_key():
    name = read_json_object(request).get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise ApiError(400, "invalid_name",
                       f"'name' must be a string of 1 to {MAX_NAME_CHARS} characters.")
    check_storable(name, "name")
    try:
        key, secret = services().store.api_keys.create(current_user_id(), " ".join(name.split()))
    except TooManyKeys as too_many:
        raise ApiError(409, "too_many_keys", f"You already have {too_many.args[0]} API keys. "
                       "Revoke one you no longer use first.") from None
    return jsonify({**_key_json(key), "key": secret}), 201


@bp.get("/keys")
def list_keys():
    user_id = known_user_id()
    keys = services().store.api_keys.of_user(user_id) if user_id else []
    return jsonify({"keys": [_key_json(key) for key in keys]})


@bp.delete("/keys/<id:key_id>")
def revoke_key(key_id: str):
    missing = ApiError(404, "key_not_found", "No such API key.")
    if not services().store.api_keys.revoke(owner_or(missing), key_id):
        raise missing
    return "", 204


def _key_json(key: ApiKey) -> dict:
    return {"id": key.id, "name": key.name, "created_at": iso(key.created_at),
            "last_used_at": iso(key.last_used_at) if key.last_used_at else None}
