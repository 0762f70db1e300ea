"""Model registry: one MLflow registered model per dataset, champion/challenger aliases, promotion policy.

Importing this package never imports torch (the API image has none)."""
from .policy import POLICIES, PolicyError, resolve_policy
from .served import ServedModel
from .store import (CHALLENGER, CHAMPION, DEFAULT_JOB_ID, ModelNotFound, NothingWithinBudget, Registry,
                    RegistryConflict, RegistryError, champion, get_registry, list_models, model_name, promote,
                    promote_within, register_default_if_empty, register_result, rollback, run_exists)

__all__ = ["CHALLENGER", "CHAMPION", "DEFAULT_JOB_ID", "ModelNotFound", "NothingWithinBudget", "POLICIES", "PolicyError",
           "Registry", "RegistryConflict", "RegistryError", "ServedModel", "champion", "get_registry", "list_models",
           "model_name", "promote", "promote_within", "register_default_if_empty", "register_result", "resolve_policy",
           "rollback", "run_exists"]
