"""Chest radiographs for the paper's data-type study (section 6.3 (3), Table 1) and a stand-in.

ChestX-ray (Sait et al. 2020): 1,281 COVID-19, 3,270 normal, 1,656 viral-pneumonia and 3,001
bacterial-pneumonia posterior-anterior X-rays; the paper converts them to 128x128 grayscale and
splits 66.6 / 16.7 / 16.7 % (train / test / attacker auxiliary), all four classes in each.
"""

from __future__ import annotations

from ciprivacy.data.sources import SOURCES, PathNeed, RawImages, image_folder, needs, skimage_patches
from ciprivacy.signature import NonNegativeInt, PositiveInt

CHESTXRAY_ORIGIN = (
    "a folder with one sub-folder per class (4: COVID-19, normal, viral pneumonia, bacterial "
    "pneumonia) of chest X-ray images, from 'Curated Dataset for COVID-19 Posterior-Anterior "
    "Chest Radiography Images (X-Rays)', Sait et al., Mendeley Data, "
    "https://data.mendeley.com/datasets/9xkhgts2s6"
)


@SOURCES.register("chestxray_folder")
@needs(PathNeed("root", "dir", origin=CHESTXRAY_ORIGIN))
def chestxray_folder(
    root: str,
    resolution: int,
    channels: int,
    num_classes: PositiveInt | None = 4,
    min_images_per_class: PositiveInt = 10,
) -> RawImages:
    """Chest X-rays from a local folder, one sub-folder per class (class = folder name).

    16-bit radiographs are stretched to 8 bits by their own range; every image is resized to
    a square without keeping its aspect ratio. ``num_classes`` and ``min_images_per_class``
    as for ``image_folder``: a wrong class count or a class with too few images is an error.
    """
    return image_folder(
        root=root,
        resolution=resolution,
        channels=channels,
        num_classes=num_classes,
        min_images_per_class=min_images_per_class,
    )


# Stand-in: no radiographs ship with scikit-image, so the four classes are four biomedical
# images it bundles (a CT test phantom, a fundus photograph, a retinal angiogram, a histology
# slide), cut into random patches and converted to grayscale. Like the X-ray task it is a
# four-class grayscale problem whose classes differ in texture and structure; it says nothing
# about pneumonia.
XRAY_STANDIN_PHOTOS = ("shepp_logan_phantom", "retina", "microaneurysms", "immunohistochemistry")


@SOURCES.register("skimage_medical_patches")
def skimage_medical_patches(
    resolution: int,
    channels: int,
    images_per_class: PositiveInt = 200,
    photos: tuple[str, ...] = XRAY_STANDIN_PHOTOS,
    seed: NonNegativeInt = 0,
) -> RawImages:
    """Stand-in for ChestX-ray: patches of four bundled biomedical images, one class each."""
    return skimage_patches(
        resolution=resolution, channels=channels, images_per_class=images_per_class, photos=photos, seed=seed
    )
