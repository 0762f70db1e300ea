"""When does a newly registered version become champion?

`better-nme`: when no champion exists, or when landmarks.selection.choose_between promotes the candidate: where both
versions were logged with each validation face's NME, clean and occluded (and video frames per person, where
packaged so), the served-model rule picks it on the sets both have (the lower mean NME wins unless the other version
is not worse face by face and scores lower on the tie-break sets) and it is better than the champion face by face on
one of those sets and worse on none; where either lacks them, the
lower mean NME on the same evaluation split wins, as it does where the face scores cannot be compared (fewer than
landmarks.selection.MIN_SHARED_FACES faces in common, say; the reason says why). NMEs measured on different splits
are not comparable, so the candidate then stays challenger and the reason says why. `always`: every new version is
promoted. `manual`: never automatically; an operator promotes."""
import math

from landmarks.selection import SelectionError, choose_between
from sdhrnet.settings import get_settings

POLICIES = ("better-nme", "always", "manual")
DEFAULT_POLICY = "better-nme"
POLICY_ENV = "SDHRNET_PROMOTION_POLICY"


class PolicyError(ValueError):
    pass


def resolve_policy(policy: str | None = None) -> str:
    name = (policy or get_settings().promotion_policy or DEFAULT_POLICY).strip().lower()
    if name not in POLICIES:
        raise PolicyError(f"unknown promotion policy '{name}'; use one of {', '.join(POLICIES)} "
                          f"(argument or {POLICY_ENV})")
    return name


def _nme(metrics: dict) -> float | None:
    try:
        value = float(metrics.get("nme"))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def decide(policy: str, candidate: dict, champion: dict | None) -> tuple[bool, str]:
    """candidate/champion: {"nme": float, "split": str, "faces": FACE_SCORES document or None}; champion None
    when there is none. Returns (promote, human-readable reason)."""
    if policy == "manual":
        return False, "policy manual: waits for an operator to promote it"
    if policy == "always":
        return True, "policy always: every new version is promoted"
    if champion is None:
        return True, "no champion yet"
    new, old = _nme(candidate), _nme(champion)
    if new is None:
        return False, "the candidate has no NME to compare"
    if old is None:
        return True, "the champion has no NME to compare"
    if str(candidate.get("split")) != str(champion.get("split")):
        return False, (f"not comparable: candidate measured on split '{candidate.get('split')}', "
                       f"champion on '{champion.get('split')}'")
    fallback = ""
    if candidate.get("faces") and champion.get("faces"):
        try:
            choice = choose_between(champion["faces"], candidate["faces"])
            return choice.served == "candidate", f"face by face, {choice.why}"
        except SelectionError as e:
            fallback = f" ({e})"
    if new < old:
        return True, f"NME {new:.5f} < champion's {old:.5f} on split '{candidate.get('split')}'{fallback}"
    return False, f"NME {new:.5f} >= champion's {old:.5f} on split '{candidate.get('split')}'{fallback}"
