"""sketch2photo's Hydra sweeper for Optuna >= 4 (hparams_search=optuna): optuna_sweeper.py."""
