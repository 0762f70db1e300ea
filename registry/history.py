"""Who changed the champion, when, and from which version to which — kept as registered-model tags.

`champion_history` is a JSON list of events; `champion_stack` the chain of champions that rollback
walks back along (a rollback pops it, so two rollbacks go two steps back instead of flip-flopping)."""
import json
from datetime import datetime, timezone

HISTORY_TAG = "champion_history"
STACK_TAG = "champion_stack"
MAX_EVENTS = 200  # registry tag values may hold 100k characters; 200 events stay far below


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _load_list(tags: dict, key: str) -> list:
    try:
        value = json.loads(tags.get(key) or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def read_history(tags: dict) -> list[dict]:
    return [e for e in _load_list(tags, HISTORY_TAG) if isinstance(e, dict)]


def read_stack(tags: dict) -> list[str]:
    return [str(v) for v in _load_list(tags, STACK_TAG)]


def make_event(action: str, old: str | None, new: str | None, who: str, reason: str = "") -> dict:
    return {"action": action, "from": old, "to": new, "who": who, "when": now_iso(), "reason": reason}


def with_event(tags: dict, event: dict) -> dict[str, str]:
    """New values of the two tags after `event` (promote pushes, rollback pops)."""
    history = (read_history(tags) + [event])[-MAX_EVENTS:]
    stack = read_stack(tags)
    if event["action"] == "rollback":
        stack = stack[:-1] if stack else []
    elif not stack or stack[-1] != event["to"]:
        stack.append(event["to"])
    return {HISTORY_TAG: json.dumps(history), STACK_TAG: json.dumps(stack[-MAX_EVENTS:])}
