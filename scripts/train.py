"""Fine-tune a PerFace model on triplets with PyTorch Lightning.

    python scripts/train.py fit --config configs/proxy_attributes.yaml
    python scripts/train.py fit --config configs/smoke.yaml --trainer.max_epochs 1
    python scripts/train.py fit --config configs/perface_dlib.yaml --print_config
    python scripts/train.py fit --config configs/smoke.yaml --debug     # tracebacks instead of one-line errors

Every option of the Trainer, of :class:`perface.training.module.PerFaceModule` (``--model.*``) and of
:class:`perface.training.datamodule.TripletDataModule` (``--data.*``) can be set in YAML or on the command line.
"""

import sys

from lightning.pytorch.cli import LightningCLI

from perface.cli.main import report_error
from perface.training.datamodule import TripletDataModule
from perface.training.module import PerFaceModule

PROG = "train.py"


def main(args=None) -> LightningCLI:
    return LightningCLI(PerFaceModule, TripletDataModule, save_config_kwargs={"overwrite": True}, args=args)


def run(argv: list[str] | None = None) -> int:
    """The command line. Errors go through the ``perface`` command's funnel
    (:func:`perface.cli.main.report_error`): one line on stderr starting ``train.py:``, exit code 2 for bad
    settings (``SettingsError``, ``UsageError``), 1 for other failures, 130 for an interrupt; ``--debug`` keeps
    the traceback. Argument errors are LightningCLI's own (usage message, exit code 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    sys.argv = [sys.argv[0], *argv]  # LightningCLI reads the command line itself (args= is for code)
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the CLI's one funnel turns errors into messages
        if debug and not isinstance(exc, KeyboardInterrupt):
            raise
        return report_error(exc, prog=PROG)
    return 0


if __name__ == "__main__":
    sys.exit(run())
