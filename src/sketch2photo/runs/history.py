"""The run's per-epoch metrics, kept in checkpoints so a resumed run continues them (metrics.json's
history)."""

from __future__ import annotations

from lightning.pytorch import Callback

from sketch2photo.module import epoch_metrics


class MetricHistory(Callback):
    """Epoch-level metrics, one row per epoch; kept in checkpoints so a resumed run continues it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.rows.append(
            {"epoch": trainer.current_epoch + 1, **epoch_metrics(trainer.callback_metrics)}
        )

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        # Resuming restores earlier epochs; trainer.test(ckpt_path=<best>) restores an older state,
        # which must not drop the epochs this process has recorded since.
        by_epoch = {row["epoch"]: row for row in state["rows"]}
        by_epoch.update({row["epoch"]: row for row in self.rows})
        self.rows = [by_epoch[epoch] for epoch in sorted(by_epoch)]
