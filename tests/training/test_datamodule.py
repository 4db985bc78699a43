from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from perface.errors import AnnotationError
from perface.preprocessing import DLIB
from perface.training.datamodule import TripletDataModule

TRIPLETS = "data/annotations/proxy_attributes_utkface_fairface.csv"


@pytest.fixture(scope="module")
def dm(data_root, tmp_path_factory):
    dm = TripletDataModule(TRIPLETS, root=str(data_root), batch_size=8, max_train=24, max_val=12, augment=1.0,
                           prep_workers=0, cache_dir=str(tmp_path_factory.mktemp("cache")), preprocessing=DLIB)
    dm.setup("fit")
    return dm


def test_split_column_gives_disjoint_train_and_val(dm):
    assert len(dm.train_set) == 24 and len(dm.val_set) == 12
    train_ids = set(dm.train_set.index.ravel().tolist())
    val_ids = set(dm.val_set.index.ravel().tolist())
    assert not train_ids & val_ids  # the committed proxy split is disjoint by image


def test_items_carry_the_cached_uint8_chips(dm):
    item = dm.val_set[0]
    assert item["chips"].shape == (3, 150, 150, 3) and item["chips"].dtype == torch.uint8
    expected = np.stack([dm.chips[j] for j in item["ids"].tolist()])
    np.testing.assert_array_equal(item["chips"].numpy(), expected)  # val: no augmentation


def test_augmentation_is_drawn_per_image(dm):
    # the same chip three times in one triplet: independent draws make the three copies differ
    ds = dm.train_set
    ds_index = ds.index.copy()
    ds.index[0] = [ds_index[0, 0]] * 3
    try:
        differ = 0
        for _ in range(10):
            imgs = ds[0]["chips"]
            differ += int(not torch.equal(imgs[0], imgs[1]) or not torch.equal(imgs[1], imgs[2]))
        assert differ >= 8
    finally:
        ds.index[:] = ds_index


def test_batches(dm):
    batch = next(iter(dm.train_dataloader()))
    assert batch["chips"].shape == (8, 3, 150, 150, 3) and batch["p_a"].shape == (8,)


def test_file_without_split_needs_val(tmp_path, data_root):
    frame = pd.read_csv(TRIPLETS).drop(columns=["split"]).head(10)
    f = tmp_path / "t.csv"
    frame.to_csv(f, index=False)
    dm = TripletDataModule(str(f), root=str(data_root), preprocessing=DLIB)
    with pytest.raises(AnnotationError, match="split"):
        dm.setup("fit")


def test_flip_mirrors_single_images_under_their_own_cache_key(dm):
    from perface.model import mirror
    from perface.training.triplet_dataset import TripletDataset, mirror_chips, mirror_key

    ds = dm.train_set
    always = TripletDataset(ds.index, ds.p_a, dm.chips, flip=1.0)
    never = TripletDataset(ds.index, ds.p_a, dm.chips, flip=0.0)
    item, plain = always[0], never[0]
    assert item["ids"].tolist() == [mirror_key(j) for j in ds.index[0].tolist()] and all(k < 0 for k in item["ids"])
    torch.testing.assert_close(item["chips"], mirror_chips(plain["chips"]))
    # mirroring the uint8 chips is mirroring the network input (inference's flip TTA)
    np.testing.assert_array_equal(DLIB.normalize(item["chips"].numpy()),
                                  mirror(torch.from_numpy(DLIB.normalize(plain["chips"].numpy()))).numpy())
    assert plain["ids"].tolist() == ds.index[0].tolist()
    assert mirror_key(mirror_key(5)) == 5
    half = TripletDataset(ds.index, ds.p_a, dm.chips, flip=0.5)
    keys = np.concatenate([half[i]["ids"].numpy() for i in range(len(ds)) for _ in range(4)])
    assert 0.35 < (keys < 0).mean() < 0.65  # drawn per image


def test_flip_keeps_chips_cacheable(data_root, tmp_path):
    dm = TripletDataModule(TRIPLETS, root=str(data_root), batch_size=4, max_train=8, max_val=4, augment=0.0,
                           flip=0.5, prep_workers=0, cache_dir=str(tmp_path / "cache"), preprocessing=DLIB)
    dm.setup("fit")
    assert dm.train_set.augment is None and dm.train_set.flip == 0.5 and dm.val_set.flip == 0.0


def test_flip_draws_differ_between_dataloader_workers(dm):
    from torch.utils.data import DataLoader

    from perface.training.triplet_dataset import TripletDataset

    ds = dm.train_set
    same = TripletDataset(ds.index[[0] * 16], ds.p_a[[0] * 16], dm.chips, flip=0.5)
    batches = list(DataLoader(same, batch_size=8, num_workers=2))  # one batch from each worker
    keys = [b["ids"].numpy() for b in batches]
    assert len(keys) == 2 and not np.array_equal(keys[0], keys[1])


def test_a_val_file_never_lets_val_or_test_rows_train(data_root, tmp_path):
    # a split file and a separate val file: the split file's val and test rows stay out of training, and a val
    # file with a split column validates on its val rows only
    frame = pd.read_csv(TRIPLETS)
    assert {"train", "val", "test"} <= set(frame["split"])
    val_file = tmp_path / "val.csv"
    frame.iloc[::-1].to_csv(val_file, index=False)  # the same file, another order: same rows per split
    dm = TripletDataModule(TRIPLETS, val=str(val_file), root=str(data_root), preprocessing=DLIB)
    train, val = dm._frames()
    assert len(train) == (frame["split"] == "train").sum() and set(train["split"]) == {"train"}
    assert len(val) == (frame["split"] == "val").sum() and set(val["split"]) == {"val"}
    no_split = tmp_path / "val_only.csv"
    frame[frame["split"] == "test"].drop(columns="split").to_csv(no_split, index=False)
    _, val = TripletDataModule(TRIPLETS, val=str(no_split), root=str(data_root), preprocessing=DLIB)._frames()
    assert len(val) == (frame["split"] == "test").sum()  # a file without a split column: all its rows


def test_views_are_fixed_augmented_copies_of_the_anchor_under_their_own_keys(data_root, tmp_path):
    from perface.training.triplet_dataset import mirror_key, view_key

    def make():
        dm = TripletDataModule(TRIPLETS, root=str(data_root), batch_size=4, max_train=8, max_val=4, augment=0.0,
                               views=2, prep_workers=0, cache_dir=str(tmp_path / "cache"), preprocessing=DLIB)
        dm.setup("fit")
        return dm

    dm, again = make(), make()
    assert dm.view_chips.shape == (2, *dm.chips.shape) and dm.view_chips.dtype == np.uint8
    np.testing.assert_array_equal(dm.view_chips, again.view_chips)  # drawn once, the same on every run
    changed = (dm.view_chips.astype(int) != dm.chips[None].astype(int)).any(axis=(2, 3, 4))
    assert changed.mean() > 0.5  # most views differ from their chip (each transform fires with its probability)
    assert "view" not in dm.val_set[0]  # validation measures the images as they are
    seen = set()
    for _ in range(20):
        item = dm.train_set[0]
        anchor = int(dm.train_set.index[0, 0])
        v = int(item["view_id"]) // (1 << 32) - 1
        assert int(item["view_id"]) == view_key(anchor, v) and v in (0, 1)
        np.testing.assert_array_equal(item["view"].numpy(), dm.view_chips[v, anchor])
        seen.add(v)
    assert seen == {0, 1}
    keys = {view_key(j, v) for j in range(len(dm.chips)) for v in range(2)}
    images = set(range(len(dm.chips))) | {mirror_key(j) for j in range(len(dm.chips))}
    assert len(keys) == 2 * len(dm.chips) and not keys & images  # never another chip's cache key


def test_bad_view_settings_fail_when_the_config_is_read(data_root):
    from perface.errors import SettingsError

    with pytest.raises(SettingsError, match="data.views"):
        TripletDataModule(TRIPLETS, root=str(data_root), views=-1, preprocessing=DLIB)


def test_reference_images_ride_with_training_triplets_under_their_own_keys(data_root, tmp_path):
    from perface.training.triplet_dataset import REFERENCE_START, mirror_key, reference_key, view_key

    committed = Path(__file__).resolve().parents[2] / "data" / "reference" / "lfw_outside_protocols.txt"
    listed = [ln for ln in committed.read_text().splitlines() if not ln.startswith("#")]
    names = listed[:3] + ["lfw/images/Nobody/Nobody_0001.jpg"]
    reference = tmp_path / "reference.txt"
    reference.write_text("# three LFW photos and a missing one\n\n" + "\n".join(names + names[:1]) + "\n")
    dm = TripletDataModule(TRIPLETS, root=str(data_root), batch_size=4, max_train=8, max_val=4, augment=0.0,
                           views=1, reference_images=str(reference), prep_workers=0, cache_dir=str(tmp_path / "cache"),
                           preprocessing=DLIB)
    dm.setup("fit")
    assert dm.reference_chips.shape == (3, 150, 150, 3) and dm.reference_chips.dtype == np.uint8  # repeat listed once
    bad = str(data_root / names[3])
    assert set(dm.skipped) == {bad} and dm.skipped[bad]  # the missing image is recorded with its reason
    assert "reference" not in dm.val_set[0]  # validation measures the triplets only
    seen = set()
    for _ in range(30):
        item = dm.train_set[0]
        r = int(item["reference_id"]) - REFERENCE_START
        assert int(item["reference_id"]) == reference_key(r) and 0 <= r < 3
        np.testing.assert_array_equal(item["reference"].numpy(), dm.reference_chips[r])
        seen.add(r)
    assert seen == {0, 1, 2}  # drawn at random per item
    n = len(dm.chips)
    others = set(range(n)) | {mirror_key(j) for j in range(n)} | {view_key(j, 0) for j in range(n)}
    assert not {reference_key(r) for r in range(3)} & others


@pytest.mark.parametrize("content, needle", [
    (None, "cannot read it"),
    ("# only a comment\n\n", "lists no image"),
])
def test_bad_reference_lists_fail_when_the_config_is_read(content, needle, data_root, tmp_path):
    from perface.errors import SettingsError

    path = tmp_path / "reference.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=f"data.reference_images: {path}.*{needle}"):
        TripletDataModule(TRIPLETS, root=str(data_root), reference_images=str(path), preprocessing=DLIB)


def test_reference_list_of_images_without_chips_fails_at_setup(data_root, tmp_path):
    from perface.errors import SettingsError

    path = tmp_path / "reference.txt"
    path.write_text("lfw/images/Aaron_Pena/Aaron_Pena_0001.jpg\n")  # under data_root, not under tmp_path
    dm = TripletDataModule(TRIPLETS, root=str(data_root), max_train=4, max_val=4, augment=0.0,
                           reference_images=str(path), reference_root=str(tmp_path), prep_workers=0,
                           cache_dir=str(tmp_path / "cache"), preprocessing=DLIB)
    with pytest.raises(SettingsError, match=f"none of the 1 images .* has a chip .*data.reference_root {tmp_path}"):
        dm.setup("fit")
