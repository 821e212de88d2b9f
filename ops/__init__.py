"""Pure computation, one subpackage per concern; nothing here imports Prefect, MLflow or Ray."""
