"""Fine-tune a PerFace model on triplets with PyTorch Lightning.

    python scripts/train.py fit --config configs/proxy_attributes.yaml
    python scripts/train.py fit --config configs/smoke.yaml --trainer.max_epochs 1
    python scripts/train.py fit --config configs/perface_dlib.yaml --print_config

Every option of the Trainer, of :class:`perface.training.module.PerFaceModule` (``--model.*``) and of
:class:`perface.training.datamodule.TripletDataModule` (``--data.*``) can be set in YAML or on the command line.
"""

from lightning.pytorch.cli import LightningCLI

from perface.training.datamodule import TripletDataModule
from perface.training.module import PerFaceModule


def main(args=None) -> LightningCLI:
    return LightningCLI(PerFaceModule, TripletDataModule, save_config_kwargs={"overwrite": True}, args=args)


if __name__ == "__main__":
    main()
