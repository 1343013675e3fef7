"""FaceScrub / CelebA / ChestX-ray sources, auxiliary data from another source, availability
messages and the offline stand-ins, on tiny generated folders."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ciprivacy.data import SOURCES, DataError, data_unavailable, load_prepared, prepare_dataset
from ciprivacy.data.faces import read_name_list, shipped_name_list

ROOT = Path(__file__).resolve().parents[1]


def write_classes(root, classes, per_class=4, size=(20, 24), mode="RGB", suffix=".png", seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(d / f"{i}{suffix}")
    return root


def write_celeba(root, identities, size=(178, 218)):
    """Aligned-CelebA-like images: grey outside the Yang et al. crop box, a colour per identity inside."""
    image_dir = root / "img_align_celeba"
    image_dir.mkdir(parents=True)
    lines = []
    for i, ident in enumerate(identities, start=1):
        arr = np.full((size[1], size[0], 3), 128, dtype=np.uint8)
        arr[70:178, 35:143] = (ident * 40 % 256, 255 - ident * 30 % 256, 60)
        name = f"{i:06d}.png"
        Image.fromarray(arr).save(image_dir / name)
        lines.append(f"{name} {ident}")
    (root / "identity_CelebA.txt").write_text("\n".join(lines) + "\n")
    return image_dir, root / "identity_CelebA.txt"


def write_name_list(path, rows):
    path.write_text("# test list\nceleba_identity,name\n" + "".join(f"{i},{n}\n" for i, n in rows))
    return path


def face_block(root, aux=None):
    block = {
        "source": "facescrub_folder",
        "options": {"root": root, "num_classes": 3, "min_images_per_class": 4},
        "resolution": 16,
        "channels": 3,
        "split": {"train": 0.75, "test": 0.25},
        "split_seed": 0,
        "max_images": None,
    }
    if aux is not None:
        block["aux_source"] = aux
    return block


# --- FaceScrub --------------------------------------------------------------------------------


def test_facescrub_folder_reads_identities_as_classes(tmp_path):
    write_classes(tmp_path, ["Aaron_Eckhart", "Adam_Brody", "Alec_Baldwin"], per_class=5, suffix=".jpg")
    raw = SOURCES.get("facescrub_folder")(root=str(tmp_path), resolution=16, channels=3, num_classes=3)
    assert raw.images.shape == (15, 3, 16, 16) and raw.images.dtype == torch.uint8
    assert raw.classes == ["Aaron_Eckhart", "Adam_Brody", "Alec_Baldwin"]
    assert torch.bincount(raw.labels).tolist() == [5, 5, 5]


def test_facescrub_errors_name_the_class_or_file(tmp_path):
    write_classes(tmp_path, ["A", "B", "C"], per_class=3)
    source = SOURCES.get("facescrub_folder")
    with pytest.raises(DataError, match="3 classes.*expected num_classes=530"):
        source(root=str(tmp_path), resolution=16, channels=3)
    with pytest.raises(DataError, match="class 'A'.*has 3 images, expected at least 5"):
        source(root=str(tmp_path), resolution=16, channels=3, num_classes=3, min_images_per_class=5)
    (tmp_path / "B" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(DataError, match="corrupt.jpg"):
        source(root=str(tmp_path), resolution=16, channels=3, num_classes=3, min_images_per_class=1)


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    write_classes(tmp_path, ["A", "B", "C"], per_class=2)
    good = tmp_path / "C" / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, quality=95)
    good.write_bytes(good.read_bytes()[:600])
    with pytest.raises(DataError, match="cut.jpg"):
        SOURCES.get("facescrub_folder")(
            root=str(tmp_path), resolution=16, channels=3, num_classes=3, min_images_per_class=1
        )


# --- ChestX-ray -------------------------------------------------------------------------------


def test_chestxray_folder_is_grayscale_four_classes_and_stretches_16_bit(tmp_path):
    classes = ["COVID-19", "Normal", "Pneumonia-Bacterial", "Pneumonia-Viral"]
    write_classes(tmp_path, classes, per_class=10, mode="L")
    deep = np.linspace(0, 4095, 30 * 40).reshape(40, 30).astype(np.uint16)  # 12-bit data in 16 bits
    Image.fromarray(deep).save(tmp_path / "Normal" / "deep.png")
    raw = SOURCES.get("chestxray_folder")(root=str(tmp_path), resolution=16, channels=1)
    assert raw.images.shape == (41, 1, 16, 16)
    assert raw.classes == classes
    deep_img = raw.images[raw.labels == 1][-1]  # "deep.png" sorts after 0.png ... 9.png
    assert deep_img.min() < 20 and deep_img.max() > 235  # stretched, not clipped to white


def test_chestxray_wrong_class_count_and_too_few_images(tmp_path):
    write_classes(tmp_path, ["COVID-19", "Normal", "Viral"], per_class=10, mode="L")
    with pytest.raises(DataError, match="COVID-19, Normal, Viral.*expected num_classes=4"):
        SOURCES.get("chestxray_folder")(root=str(tmp_path), resolution=16, channels=1)
    write_classes(tmp_path, ["Bacterial"], per_class=2, mode="L")
    with pytest.raises(DataError, match="class 'Bacterial'.*expected at least 10"):
        SOURCES.get("chestxray_folder")(root=str(tmp_path), resolution=16, channels=1)


# --- CelebA and the name list -----------------------------------------------------------------


def test_name_list_format_and_shipped_file():
    assert read_name_list(shipped_name_list()) == {}  # ships empty, with an explanation
    assert "celeba_identity,name" in shipped_name_list().read_text()


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,name\n1,A\n", "header"),
        ("celeba_identity,name\nabc,A\n", "line 2.*not a CelebA identity"),
        ("celeba_identity,name\n1,A\n1,B\n", "line 3.*listed twice"),
        ("celeba_identity,name\n1\n", "line 2.*2 columns"),
    ],
)
def test_name_list_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "list.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_name_list(path)


def test_celeba_folder_removes_listed_identities_and_crops_the_face(tmp_path):
    image_dir, id_file = write_celeba(tmp_path, [1, 1, 2, 2, 2, 3])
    names = write_name_list(tmp_path / "overlap.csv", [(2, "Adam_Brody"), (99, "Not_In_CelebA")])
    raw = SOURCES.get("celeba_folder")(
        image_dir=str(image_dir), identity_file=str(id_file), resolution=16, channels=3, exclude_list=str(names)
    )
    assert raw.images.shape == (3, 3, 16, 16)
    assert raw.classes == ["celeba_1", "celeba_3"]
    assert raw.info["removed_identities"] == 1 and raw.info["removed_images"] == 3
    assert raw.info["crop_box"] == [35, 70, 143, 178]
    # only the face box survives the crop: no grey background pixels
    assert not (raw.images == 128).all(1).any()
    kept_all = SOURCES.get("celeba_folder")(
        image_dir=str(image_dir), identity_file=str(id_file), resolution=16, channels=3, exclude_list=None
    )
    assert kept_all.images.shape[0] == 6


def test_celeba_crop_outside_the_image_names_the_file(tmp_path):
    image_dir, id_file = write_celeba(tmp_path, [1, 2], size=(100, 100))
    with pytest.raises(DataError, match="000001.png.*does not fit"):
        SOURCES.get("celeba_folder")(
            image_dir=str(image_dir), identity_file=str(id_file), resolution=16, channels=3, exclude_list=None
        )


def test_torchvision_celeba_without_files_says_what_to_get(tmp_path):
    with pytest.raises(DataError, match="img_align_celeba"):
        SOURCES.get("torchvision_celeba")(
            root=str(tmp_path), resolution=16, channels=3, download=False, exclude_list=None
        )


# --- availability -----------------------------------------------------------------------------


def test_unavailable_names_the_setting_and_where_data_comes_from(tmp_path):
    block = face_block(None)
    message = data_unavailable("facescrub", block)
    assert "datasets.facescrub.options.root is not set" in message
    assert "winklerbros.net/facescrub" in message
    block["options"]["root"] = str(tmp_path / "nowhere")
    assert "not an existing folder" in data_unavailable("facescrub", block)
    write_classes(tmp_path / "faces", ["A", "B", "C"])
    assert data_unavailable("facescrub", face_block(str(tmp_path / "faces"))) is None
    xray = {"source": "chestxray_folder", "options": {"root": None}}
    assert "datasets.chestxray.options.root is not set" in data_unavailable("chestxray", xray)
    assert "mendeley" in data_unavailable("chestxray", xray)


def test_unavailable_checks_the_aux_source_and_its_name_list(tmp_path):
    write_classes(tmp_path / "faces", ["A", "B", "C"])
    faces = str(tmp_path / "faces")
    aux = {"source": "torchvision_celeba", "options": {"root": str(tmp_path / "celeba"), "download": True}}
    message = data_unavailable("facescrub", face_block(faces, aux))
    # download: true may create root; the shipped list is empty, which is reported
    assert "datasets.facescrub.aux_source.options.exclude_list" in message and "lists no identities" in message
    assert "options.root" not in message
    aux["options"]["download"] = False
    assert "datasets.facescrub.aux_source.options.root is" in data_unavailable("facescrub", face_block(faces, aux))
    aux["options"].update(download=True, exclude_list=str(write_name_list(tmp_path / "l.csv", [(5, "A")])))
    assert data_unavailable("facescrub", face_block(faces, aux)) is None
    folder_aux = {"source": "celeba_folder", "options": {"exclude_list": None}}
    message = data_unavailable("facescrub", face_block(faces, folder_aux))
    assert (
        "aux_source.options.image_dir is not set" in message
        and "aux_source.options.identity_file is not set" in message
    )
    cifar = {"source": "torchvision_cifar10", "options": {"root": str(tmp_path / "new"), "download": True}}
    assert data_unavailable("cifar10", cifar) is None
    assert data_unavailable("photos", {"source": "skimage_patches"}) is None
    with pytest.raises(KeyError, match="unknown data source"):
        data_unavailable("x", {"source": "nope"})


def test_input_files_are_the_files_whose_content_decides_the_data(tmp_path):
    from ciprivacy.data import input_files

    faces = str(tmp_path / "faces")
    aux = {"source": "torchvision_celeba", "options": {"root": str(tmp_path / "celeba"), "download": True}}
    assert input_files(face_block(faces, aux)) == [str(shipped_name_list())]  # absent: the shipped list
    aux["options"]["exclude_list"] = "lists/overlap.csv"
    assert input_files(face_block(faces, aux)) == ["lists/overlap.csv"]
    aux["options"]["exclude_list"] = None
    assert input_files(face_block(faces, aux)) == []
    folder_aux = {
        "source": "celeba_folder",
        "options": {"image_dir": "img", "identity_file": "ids.txt", "exclude_list": "l.csv"},
    }
    assert input_files(face_block(faces, folder_aux)) == ["ids.txt", "l.csv"]  # folders are not inputs
    assert input_files({"source": "torchvision_cifar10", "options": {"root": "data", "download": True}}) == []


def test_prepare_refuses_unavailable_data_with_the_message(tmp_path):
    with pytest.raises(DataError, match="datasets.facescrub.options.root is not set"):
        prepare_dataset("facescrub", face_block(None), str(tmp_path / "d.pt"))


# --- auxiliary data from another source -------------------------------------------------------


def test_aux_from_another_source_splits_main_into_train_and_test(tmp_path):
    write_classes(tmp_path / "faces", ["A", "B", "C"], per_class=8)
    image_dir, id_file = write_celeba(tmp_path / "celeba", [1, 1, 2, 2, 3, 3, 4, 4])
    names = write_name_list(tmp_path / "overlap.csv", [(4, "C")])
    aux = {
        "source": "celeba_folder",
        "options": {"image_dir": str(image_dir), "identity_file": str(id_file), "exclude_list": str(names)},
        "max_images": None,
    }
    out = tmp_path / "d.pt"
    prepared = prepare_dataset("facescrub", face_block(str(tmp_path / "faces"), aux), str(out))
    again = load_prepared(str(out))
    assert again.meta["sizes"] == {"train": 18, "test": 6, "aux": 6}
    assert again.meta["aux_source"] == "celeba_folder" and again.meta["aux_info"]["removed_images"] == 2
    assert again.images.shape == (30, 3, 16, 16)
    assert again.classes == ["A", "B", "C"] and again.num_classes == 3
    train_x, train_y = again.split("train")
    aux_x, aux_y = again.split("aux")
    assert (aux_y == -1).all() and (train_y >= 0).all()
    assert torch.bincount(again.split("test")[1]).tolist() == [2, 2, 2]
    assert set(again.splits["aux"].tolist()) == set(range(24, 30))
    assert torch.equal(prepared.images, again.images)
    # aux max_images keeps a class-balanced subset of the other source
    aux["max_images"] = 3
    small = prepare_dataset("facescrub", face_block(str(tmp_path / "faces"), aux), str(tmp_path / "s.pt"))
    assert small.meta["sizes"]["aux"] == 3 and small.meta["aux_info"]["classes"] == 3


def test_aux_fraction_with_aux_source_is_an_error(tmp_path):
    write_classes(tmp_path / "faces", ["A", "B", "C"], per_class=8)
    aux = {"source": "skimage_faces", "options": {"faces": [0, 3], "views_per_face": 2}}
    block = face_block(str(tmp_path / "faces"), aux)
    block["split"] = {"train": 0.6, "test": 0.2, "aux": 0.2}
    with pytest.raises(DataError, match="split.aux is 0.2 but aux_source is set"):
        prepare_dataset("facescrub", block, str(tmp_path / "d.pt"))
    block["split"] = {"train": 0.75, "test": 0.25, "aux": 0.0}
    assert prepare_dataset("facescrub", block, str(tmp_path / "d.pt")).meta["sizes"]["aux"] == 6


# --- the offline stand-ins --------------------------------------------------------------------


def test_skimage_faces_are_pseudo_identities_of_jittered_views():
    raw = SOURCES.get("skimage_faces")(resolution=32, channels=3, faces=[0, 10], views_per_face=4, seed=0)
    assert raw.images.shape == (40, 3, 32, 32)
    assert raw.classes[0] == "lfw_face_000" and len(raw.classes) == 10
    assert torch.bincount(raw.labels).tolist() == [4] * 10
    assert torch.equal(raw.images[:, 0], raw.images[:, 2])  # grey faces repeated into RGB
    views = raw.images[:4].float()
    assert (views[1:] - views[0]).abs().mean() > 1  # jittered, not copies
    gray = SOURCES.get("skimage_faces")(resolution=32, channels=1, faces=[0, 10], views_per_face=4, seed=0)
    assert gray.images.shape == (40, 1, 32, 32)
    with pytest.raises(DataError, match="faces must be"):
        SOURCES.get("skimage_faces")(resolution=32, channels=3, faces=[90, 120])


def test_stand_in_main_and_aux_faces_are_disjoint_images():
    main = SOURCES.get("skimage_faces")(resolution=32, channels=3, faces=[0, 40], views_per_face=1)
    aux = SOURCES.get("skimage_faces")(resolution=32, channels=3, faces=[40, 100], views_per_face=1)
    same = (main.images.flatten(1)[:, None].float() - aux.images.flatten(1)[None].float()).abs().mean(-1)
    assert same.min() > 5


def test_xray_stand_in_is_four_grayscale_classes():
    raw = SOURCES.get("skimage_medical_patches")(resolution=32, channels=1, images_per_class=5)
    assert raw.images.shape == (20, 1, 32, 32)
    assert len(raw.classes) == 4 and torch.bincount(raw.labels).tolist() == [5] * 4
    assert raw.images.float().std() > 20


# --- config blocks proposed for config.yaml / presets/demo.yaml --------------------------------

PAPER_BLOCKS = yaml.safe_load(
    """
facescrub:
  source: facescrub_folder
  options: {root: null, num_classes: 530, min_images_per_class: 5}
  resolution: 64
  channels: 3
  split: {train: 0.8, test: 0.2}
  split_seed: 0
  max_images: null
  aux_source:
    source: torchvision_celeba
    options: {root: data/raw/celeba, download: true, exclude_list: src/ciprivacy/data/facescrub_celeba_overlap.csv,
              crop_left: 35, crop_top: 70, crop_size: 108}
    max_images: null
chestxray:
  source: chestxray_folder
  options: {root: null, num_classes: 4, min_images_per_class: 10}
  resolution: 128
  channels: 1
  split: {train: 0.666, test: 0.167, aux: 0.167}
  split_seed: 0
  max_images: null
"""
)


def valid(blocks: dict) -> bool:
    from pydantic import TypeAdapter, ValidationError

    from ciprivacy.config.model import Dataset

    try:
        TypeAdapter(dict[str, Dataset]).validate_python(blocks)
    except ValidationError:
        return False
    return True


def test_config_model_accepts_aux_source_blocks_and_rejects_inconsistent_splits():
    assert valid(PAPER_BLOCKS)
    bad = copy.deepcopy(PAPER_BLOCKS)
    bad["facescrub"]["split"]["aux"] = 0.1
    assert not valid(bad)
    bad = copy.deepcopy(PAPER_BLOCKS)
    del bad["chestxray"]["split"]["aux"]
    assert not valid(bad)
    ok = copy.deepcopy(PAPER_BLOCKS)
    ok["facescrub"]["split"]["aux"] = 0
    assert valid(ok)


def test_paper_blocks_report_unavailable_until_paths_are_filled():
    for name, block in PAPER_BLOCKS.items():
        assert f"datasets.{name}.options.root is not set" in data_unavailable(name, block)


def test_celeba_source_refuses_an_empty_name_list(tmp_path):
    image_dir, id_file = write_celeba(tmp_path, [1, 2])
    with pytest.raises(DataError, match="lists no identities"):
        SOURCES.get("celeba_folder")(image_dir=str(image_dir), identity_file=str(id_file), resolution=16, channels=3)
