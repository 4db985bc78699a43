"""LightningModule that holds a :class:`perface.model.PerFace` and fine-tunes it on triplets."""

from __future__ import annotations

import math
import time

import lightning.pytorch as pl
import numpy as np
import torch
from torchmetrics import MeanMetric

from perface.errors import SettingsError
from perface.evaluation.agreement import triplet_credit
from perface.model import PerFace, flip_sum
from perface.training.losses import (INVARIANCES, RETENTIONS, SoftTripletLoss, embedding_retention, similarity_retention,
                                     view_invariance)
from perface.training.triplet_dataset import mirror_chips, mirror_key


class PerFaceModule(pl.LightningModule):
    """Triplet fine-tuning of a face backbone.

    The inference model is ``self.model`` (a :class:`PerFace`); checkpoints carry its config and
    preprocessing, so ``perface.load("x.ckpt")`` and ``perface score --model x.ckpt`` work without Lightning.

    Args:
        backbone: Registry name (``dlib_resnet``, ``iresnet50``, ...).
        backbone_weights: Weights file for backbones without packaged weights (insightface ``.onnx`` or
            arcface_torch ``.pth``).
        head_dim: Optional projection head width (identity-initialised when equal to the backbone's width).
        name: Name the trained model reports.
        loss: ``triplet`` (pytorch-metric-learning TripletMarginLoss) or ``hinge`` (DreamSim-style).
        margin: Loss margin in cosine-distance units.
        trainable_stages: Train only the last N residual stages (+ the backbone's head); None trains everything
            (see :meth:`perface.backbones.base.Backbone.set_trainable`).
        freeze_affine: Keep normalisation / affine layers of the backbone fixed (batch norm also keeps its
            running statistics).
        lr: Learning rate of the backbone.
        head_lr: Learning rate of the projection head.
        weight_decay: AdamW weight decay.
        warmup_fraction: Share of the training steps with linear warm-up before the cosine decay.
        cache_frozen_features: When training chips are not augmented, compute the frozen stages' output once
            per image and reuse it in later epochs.
        identity_weight: Weight of the identity retention term (``retention``) on the learned embedding (the
            whole model, or the perceptual branch of a two-branch model); 0 disables it.
        retention: ``embedding``: ``1 - cos(z, z_base)`` per image keeps each embedding near the base model's;
            ``similarity``: the squared difference between the learned and the base model's cosine similarity
            of every pair of images in the batch (similarity-preserving distillation: the similarity
            structure is kept, not the embeddings themselves). See :mod:`perface.training.losses`.
        flip_tta: The trained model embeds each chip and its mirror image (see :class:`PerFace`); validation
            measures it that way. Pair it with ``data.flip`` so training sees both orientations.
        invariance_weight: Weight of :func:`~perface.training.losses.view_invariance` on each triplet's anchor
            and one of its fixed augmented views (``data.views`` > 0); 0 disables it; one network only.
            Measured on the proxy set, neither mode helps (reports/sweep_proxy_attributes_visible_30k.md,
            trials 16-17).
        invariance: ``keep``: the views stay at least as similar as the base model finds them; ``pull``: they
            are pulled together (``1 - cos``), beyond the base model.
        reference_weight: Weight of per-image retention (``1 - cos(z, z_base)``, as ``retention: embedding``)
            on one unlabelled reference image per triplet (``data.reference_images``); 0 disables it. It holds
            the base model's embeddings on photos of the kind identity is verified on, which the triplets'
            own images (tight attribute-labelled crops) do not cover.
        reference_batch: Use at most this many of a batch's reference images per step (None: all, one per
            triplet); fewer cost less time, with the same term in expectation.
        perceptual_weight: None: fine-tune the backbone itself. A weight ``w`` in (0, 1): train a two-branch
            model (:class:`PerFace` ``perceptual_weight``): the backbone stays frozen as the identity branch
            and a copy of its last ``trainable_stages`` stages and head learns; similarity =
            ``(1 - w) * cos_identity + w * cos_perceptual``. The loss is on that combined similarity.
    """

    def __init__(self, backbone: str = "dlib_resnet", backbone_weights: str | None = None, head_dim: int | None = None,
                 name: str = "perface", loss: str = "triplet", margin: float = 0.05, trainable_stages: int | None = 2,
                 freeze_affine: bool = True, lr: float = 1e-4, head_lr: float = 1e-3, weight_decay: float = 1e-4,
                 warmup_fraction: float = 0.05, cache_frozen_features: bool = True, identity_weight: float = 0.0,
                 retention: str = "embedding", flip_tta: bool = False, perceptual_weight: float | None = None,
                 invariance_weight: float = 0.0, invariance: str = "keep", reference_weight: float = 0.0,
                 reference_batch: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        if retention not in RETENTIONS:
            raise SettingsError(f"model.retention must be one of {', '.join(RETENTIONS)}, got {retention!r}")
        kwargs = {"weights": backbone_weights} if backbone_weights else {}
        if perceptual_weight is not None and trainable_stages is None:
            raise SettingsError("model.trainable_stages: a two-branch model (perceptual_weight) needs the number of "
                                "stages of its perceptual branch")
        branch = {} if perceptual_weight is None else {"perceptual_weight": perceptual_weight,
                                                       "perceptual_stages": trainable_stages}
        self.model = PerFace(backbone=backbone, head_dim=head_dim, backbone_kwargs=kwargs, name=name, flip_tta=flip_tta,
                             **branch)
        n = self.model.num_stages
        if trainable_stages is not None and not 0 <= trainable_stages <= n:
            raise SettingsError(f"model.trainable_stages must be in 0..{n} for {backbone}, got {trainable_stages}")
        if invariance not in INVARIANCES:
            raise SettingsError(f"model.invariance must be one of {', '.join(INVARIANCES)}, got {invariance!r}")
        if invariance_weight and perceptual_weight is not None:
            raise SettingsError("model.invariance_weight: a two-branch model's identity branch is the base model "
                                "itself; set it to 0 or model.perceptual_weight to null")
        self.criterion = SoftTripletLoss(loss, margin)
        self.frozen_stages = self._freeze()
        self.base_top = None
        if reference_weight < 0 or (reference_batch is not None and reference_batch < 1):
            raise SettingsError(f"model.reference_weight must be >= 0 and model.reference_batch >= 1 (or null), got "
                                f"{reference_weight} and {reference_batch}")
        held = identity_weight > 0 or reference_weight > 0 or (invariance_weight > 0 and invariance == "keep")
        if held and self.model.perceptual is None:
            import copy

            self.base_top = copy.deepcopy(self.model).requires_grad_(False).eval()
            self.base_top.flip_tta = False  # compared with the one orientation a training step embeds
        # per chip key: the frozen stages' output; the base model's normalised embedding (one network) or the
        # frozen identity branch's raw embedding (two branches)
        self._features: dict[int, torch.Tensor] = {}
        self._base: dict[int, torch.Tensor] = {}
        self._val_strata: dict[int, list[float]] = {}
        self.val_soft = MeanMetric()
        self.val_hard = MeanMetric()
        self.train()  # PerFace starts in eval mode (inference); frozen BN layers stay in eval (Backbone.train)

    # --- parameters ------------------------------------------------------------------------------------
    def _freeze(self) -> int:
        """Apply ``trainable_stages`` / ``freeze_affine`` through the backbone contract; returns the number of
        frozen stages (their output is what the feature cache holds). A two-branch model freezes its whole
        backbone (the identity branch) and trains the perceptual branch."""
        if self.model.perceptual is not None:
            self.model.backbone.set_trainable(0, self.hparams.freeze_affine)
            self.model.perceptual.set_trainable(self.hparams.freeze_affine)
            return self.model.shared_stages
        return self.model.backbone.set_trainable(self.hparams.trainable_stages, self.hparams.freeze_affine)

    def use_feature_cache(self, features: dict, base: dict) -> None:
        """Share the per-chip caches (frozen stages' output, base / identity embeddings) with other modules
        of the same backbone, frozen stages and data (a sweep trains many on one data module)."""
        self._features, self._base = features, base

    def train(self, mode: bool = True):
        # The backbone keeps the normalisation layers set_trainable froze in eval mode (running statistics
        # fixed); the frozen copy of the base model never trains.
        super().train(mode)
        if self.base_top is not None:
            self.base_top.eval()
        return self

    def on_fit_start(self) -> None:
        # The trained model records how its chips were found and chosen (written into every checkpoint and
        # export), so evaluating it needs no face flags.
        dm = getattr(self.trainer, "datamodule", None)
        options = getattr(dm, "face_options", None)
        if options is not None:
            self.model.face_options = options
        if self.hparams.invariance_weight > 0 and not getattr(dm, "views", 0):
            raise SettingsError("model.invariance_weight needs augmented views of the training images: set "
                                "data.views (e.g. 2)")
        if self.hparams.reference_weight > 0 and getattr(dm, "reference_chips", None) is None:
            raise SettingsError("model.reference_weight needs reference images: set data.reference_images (e.g. "
                                "data/reference/lfw_outside_protocols.txt)")
        if self.hparams.reference_weight == 0 and getattr(dm, "reference_chips", None) is not None:
            raise SettingsError("data.reference_images is set but model.reference_weight is 0: the photos would be "
                                "drawn every step and never used; set data.reference_images to null, or give the weight")

    # --- forward ---------------------------------------------------------------------------------------
    def _inputs(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 (M, S, S, 3) chips -> float32 (M, 3, S, S) network input, on the chips' device (the model's
        own preprocessing: :meth:`Preprocessing.normalize_tensor`)."""
        return self.model.preprocessing.normalize_tensor(chips)

    def _embed(self, chips: torch.Tensor, ids: torch.Tensor, use_cache: bool) -> torch.Tensor:
        """uint8 (M, S, S, 3) chips with cache keys (M,) -> (M, D) L2-normalised embeddings.

        Training embeds the given orientation only; evaluation of a ``flip_tta`` model adds the mirror
        images' embeddings, as :meth:`PerFace.embed_tensor` does.
        """
        def one(c: torch.Tensor, mirrored: bool) -> torch.Tensor:
            return self._embed_raw(c, mirror_key(ids) if mirrored else ids, use_cache)

        tta = not self.training and self.model.flip_tta
        z = flip_sum(one, chips, flip=mirror_chips) if tta else one(chips, False)
        return self.model.normalize_embedding(z)

    def _embed_raw(self, chips: torch.Tensor, ids: torch.Tensor, use_cache: bool) -> torch.Tensor:
        """One orientation, before normalisation, reusing cached frozen features (and, for a two-branch
        model, the frozen identity branch's embeddings). With the cache, only chips not seen before are
        normalised and run through the frozen stages."""
        k = self.frozen_stages
        if k == 0 and self.model.perceptual is None:
            return self.model.top(self.model.trunk(self._inputs(chips), 0), 0, normalize=False)
        if not use_cache:
            with torch.no_grad():
                feats = self.model.trunk(self._inputs(chips), k)
                identity = None if self.model.perceptual is None else self.model.identity_top(feats)
        else:
            feats = self._cached(self._features, chips, ids, lambda c: self.model.trunk(self._inputs(c), k))
            identity = None if self.model.perceptual is None else self._cached(
                self._base, feats, ids, self.model.identity_top)
        if self.model.perceptual is None:
            return self.model.top(feats, k, normalize=False)
        return torch.cat([identity, self.model.perceptual(feats)], dim=1)

    @staticmethod
    def _cached(store: dict, inputs: torch.Tensor, ids: torch.Tensor, compute) -> torch.Tensor:
        """``compute(inputs)`` (without gradients) row by row from ``store`` keyed by chip id; rows not in the
        store are computed and kept (on the CPU)."""
        id_list = ids.tolist()
        missing = [i for i, j in enumerate(id_list) if j not in store]
        if missing:
            with torch.no_grad():
                fresh = compute(inputs[missing])
            for i, f in zip(missing, fresh):
                store[id_list[i]] = f.to("cpu", copy=True)
        return torch.stack([store[j] for j in id_list]).to(inputs.device)

    def _base_embeddings(self, chips: torch.Tensor, ids: torch.Tensor, use_cache: bool) -> torch.Tensor:
        """The untrained model's normalised embeddings of uint8 (M, S, S, 3) chips (one network; cached per
        image when chips are not augmented). The frozen stages are the base model's own, so with the cache its
        embedding is its top on the cached features: the frozen stages run once per chip, not twice."""
        if not use_cache:
            with torch.no_grad():
                return self.base_top.embed_tensor(self._inputs(chips))
        k = self.frozen_stages
        feats = self._cached(self._features, chips, ids, lambda c: self.model.trunk(self._inputs(c), k))
        return self._cached(self._base, feats, ids, lambda f: self.base_top.top(f, k))

    def _learned_and_base(self, z: torch.Tensor, flat: torch.Tensor, ids: torch.Tensor,
                          use_cache: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned embedding (the whole model, or a two-branch model's perceptual part) and the base
        model's, both (M, D) unit vectors, for the retention term."""
        if self.model.perceptual is None:
            return z, self._base_embeddings(flat, ids, use_cache)
        d, w = self.model.backbone_embedding_dim, self.model.perceptual_weight
        return z[:, d:] / w ** 0.5, z[:, :d].detach() / (1 - w) ** 0.5  # the identity branch is the base model

    def _use_feature_cache(self, training: bool) -> bool:
        if not self.hparams.cache_frozen_features or self.frozen_stages == 0:
            return False
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return (not training) or (dm is not None and getattr(dm, "augment", 1.0) == 0)

    def triplet_embeddings(self, batch: dict, training: bool):
        """A batch of triplets -> (anchor, a, b) as (B, D) L2-normalised embeddings, and the uint8
        (3B, S, S, 3) chips.

        ``training=False`` embeds as validation does (a ``flip_tta`` model adds the mirror images; frozen
        features come from the cache); ``training=True`` as a training step does. Gradients flow unless the
        caller disables them.
        """
        chips = batch["chips"]  # uint8 (B, 3, S, S, 3)
        b = chips.shape[0]
        flat = chips.flatten(0, 1)
        z = self._embed(flat, batch["ids"].flatten(), self._use_feature_cache(training)).view(b, 3, -1)
        return z[:, 0], z[:, 1], z[:, 2], flat

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        anchor, a, b, flat = self.triplet_embeddings(batch, training=True)
        loss = self.criterion(anchor, a, b, batch["p_a"])
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(anchor))
        if self.hparams.identity_weight > 0:
            ids = batch["ids"].flatten()
            z = torch.stack([anchor, a, b], dim=1).flatten(0, 1)  # same order as ids
            learned, base = self._learned_and_base(z, flat, ids, self._use_feature_cache(training=True))
            if self.hparams.retention == "similarity":
                retention = similarity_retention(learned, base)
            else:
                retention = embedding_retention(learned, base)
            self.log("train_retention", retention, on_epoch=True, batch_size=len(anchor))
            loss = loss + self.hparams.identity_weight * retention
        if self.hparams.invariance_weight > 0:
            use_cache = self._use_feature_cache(training=True)
            view, view_ids = batch["view"], batch["view_id"]
            z_view = self._embed(view, view_ids, use_cache)
            base = ()
            if self.hparams.invariance == "keep":
                base = (self._base_embeddings(flat[0::3], batch["ids"][:, 0], use_cache),
                        self._base_embeddings(view, view_ids, use_cache))
            invariance = view_invariance(anchor, z_view, *base)
            self.log("train_invariance", invariance, on_epoch=True, batch_size=len(anchor))
            loss = loss + self.hparams.invariance_weight * invariance
        if self.hparams.reference_weight > 0:
            use_cache = self._use_feature_cache(training=True)
            n = self.hparams.reference_batch
            chips, ids = batch["reference"][:n], batch["reference_id"][:n]
            learned, base = self._learned_and_base(self._embed(chips, ids, use_cache), chips, ids, use_cache)
            reference = embedding_retention(learned, base)
            self.log("train_reference_retention", reference, on_epoch=True, batch_size=len(anchor))
            loss = loss + self.hparams.reference_weight * reference
        return loss

    def on_train_epoch_start(self) -> None:
        self._epoch_start, self._epoch_triplets = time.perf_counter(), 0

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        self._epoch_triplets += len(batch["p_a"])

    def on_train_epoch_end(self) -> None:
        rate = self._epoch_triplets / max(1e-9, time.perf_counter() - self._epoch_start)
        self.log("train_triplets_per_s", rate)  # throughput of this process (epoch wall time)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        anchor, a, b, _ = self.triplet_embeddings(batch, training=False)
        p_a = batch["p_a"]
        # 2AFC credit exactly as `perface eval agreement` computes it (one definition: triplet_credit)
        sims = ((anchor * a).sum(1), (anchor * b).sum(1), p_a)
        sim_a, sim_b, p = (t.detach().float().cpu().numpy() for t in sims)
        soft = triplet_credit(sim_a, sim_b, p)  # val_agreement: soft credit p_a / 1 - p_a / 0.5
        hard = triplet_credit(sim_a, sim_b, (p >= 0.5).astype(np.float64))  # val_agreement_hard: the majority
        self.val_soft.update(torch.from_numpy(soft).to(p_a.device, torch.float32))
        self.val_hard.update(torch.from_numpy(hard).to(p_a.device, torch.float32))
        self.log("val_loss", self.criterion(anchor, a, b, p_a), batch_size=len(anchor), sync_dist=True)
        if "stratum" in batch:
            for code, credit in zip(batch["stratum"].tolist(), soft.tolist()):
                if code >= 0:
                    self._val_strata.setdefault(code, []).append(credit)

    def on_validation_epoch_end(self) -> None:
        self.log("val_agreement", self.val_soft.compute(), prog_bar=True)
        self.log("val_agreement_hard", self.val_hard.compute())
        self.val_soft.reset()
        self.val_hard.reset()
        # per stratum (this process's share of the validation set; the data module names the codes)
        names = getattr(getattr(self._trainer, "datamodule", None), "strata", None) if self._trainer else None
        for code, credits in sorted(self._val_strata.items()):
            if names is not None and code < len(names):
                self.log(f"val_agreement/{names[code]}", float(np.mean(credits)))
        self._val_strata = {}

    # --- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        head = [p for p in (self.model.head.parameters() if self.model.head is not None else []) if p.requires_grad]
        head_ids = {id(p) for p in head}
        body = [p for p in self.model.parameters() if p.requires_grad and id(p) not in head_ids]
        groups = [g for g in ({"params": body, "lr": self.hparams.lr}, {"params": head, "lr": self.hparams.head_lr})
                  if g["params"]]
        opt = torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.hparams.warmup_fraction * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- checkpoints -----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["perface"] = self.model.config()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._features.clear()
        self._base.clear()
