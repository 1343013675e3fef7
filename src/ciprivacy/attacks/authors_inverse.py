"""The authors' inverse networks (GOERAHG214/SiftFunnel, inversion_model_packages.py at c4874376),
layer for layer, and the rule that picks one for a target (``architecture: authors``).

Their code has one generator per target model and no black-box / gray-box labels; the generators
for NND defenses mirror the deepened edge, so they are the gray-box attackers. Where their code
has no generator for a case (a black-box attacker against AE or SiftFunnel, the ResNet-18
SiftFunnel at our 6 x 32 x 32 z, VGG16 at the paper's Table 5 split), ``authors_generator``
returns None and the attack falls back to our mirror network (docs/protocols.md lists each).

Names follow theirs. ConvT = ConvTranspose2d; counts are for the shapes in each docstring.
"""

from __future__ import annotations

from torch import nn

from ciprivacy.models.layers import BiasApartConvTranspose2d


def convt(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, bias: bool = True) -> nn.ConvTranspose2d:
    """ConvTranspose2d(c_in, c_out, kernel, stride, padding=1): 3x3/1 keeps the side, 4x4/2 doubles it
    (its bias added apart on the CPU, ``BiasApartConvTranspose2d``)."""
    return BiasApartConvTranspose2d(c_in, c_out, kernel, stride, 1, bias=bias)


class Inversion4(nn.Module):
    """``Inversion_4`` (lines 5-81) for the CNN split after block ``b``: z = C x s x s, then
    ConvT(C -> C/2, 4, 2) + BN + Tanh, halving the channels at each doubling of the side,
    until the side is half the image's; then ConvT(-> nc, 4, 2) + Sigmoid (``_create_decoder``,
    54-71). CNN block 2 (z 256 x 16 x 16, 64 x 64 RGB): 530,819 parameters, our mirror's."""

    def __init__(self, z_shape: tuple[int, int, int], image_shape: tuple[int, int, int]):
        super().__init__()
        c, side = z_shape[0], z_shape[1]
        layers: list[nn.Module] = []
        while side < image_shape[1] // 2:
            layers += [convt(c, c // 2, 4, 2), nn.BatchNorm2d(c // 2), nn.Tanh()]
            c, side = c // 2, side * 2
        self.decoder = nn.Sequential(*layers, convt(c, image_shape[0], 4, 2), nn.Sigmoid())

    def forward(self, z):
        return self.decoder(z)


class AEInversion4(nn.Module):
    """``AE_Inversion_4`` block 2 (lines 105-127), the gray-box attacker of the CNN AE defense:
    z = ndf x 16 x 16 (the encoder halves 2 ndf), ConvT(ndf -> 2ndf) + BN + Tanh, two
    ConvT(2ndf -> 2ndf) with nothing between, ConvT(2ndf -> ndf, 4, 2) + BN + Tanh,
    ConvT(ndf -> nc, 4, 2) + Sigmoid. ndf 128: 2,006,659 parameters."""

    def __init__(self, ndf: int, channels: int):
        super().__init__()
        self.decoder = nn.Sequential(
            convt(ndf, ndf * 2),
            nn.BatchNorm2d(ndf * 2),
            nn.Tanh(),
            convt(ndf * 2, ndf * 2),
            convt(ndf * 2, ndf * 2),
            convt(ndf * 2, ndf, 4, 2),
            nn.BatchNorm2d(ndf),
            nn.Tanh(),
            convt(ndf, channels, 4, 2),  # their ConvT(ngf, nc): runs only when ngf = ndf
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.decoder(z)


class Pv4Inversion4(nn.Module):
    """``pv4_Inversion_4`` block 2 (lines 232-248), the gray-box attacker of the CNN SiftFunnel:
    z = 12 x 16 x 16 (theirs hard-codes 12, the funnel's channels; here ``z_channels``),
    ConvT(12 -> 12) + BN + Tanh, ConvT(12 -> 12), ConvT(12 -> 12), Tanh, ConvT(12 -> 12),
    ConvT(12 -> ndf/4), ConvT(ndf/4 -> ndf, 4, 2), ConvT(ndf -> nc, 4, 2) + Sigmoid; the last
    three are linear, nothing between them. ndf 128: 80,555 parameters."""

    def __init__(self, z_channels: int, ndf: int, channels: int):
        super().__init__()
        c = z_channels
        self.decoder = nn.Sequential(
            convt(c, c),
            nn.BatchNorm2d(c),
            nn.Tanh(),
            convt(c, c),
            convt(c, c),
            nn.Tanh(),
            convt(c, c),
            convt(c, ndf // 4),
            convt(ndf // 4, ndf, 4, 2),
            convt(ndf, channels, 4, 2),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.decoder(z)


class InversionResidualBlock(nn.Module):
    """``InversionResidualBlock`` (lines 323-343): ConvT(k, stride, no bias) + BN + Tanh +
    ConvT(3, no bias) + BN, plus the input (or a ConvT(k 2, stride) + BN shortcut when the shape
    changes); no activation after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernel: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            convt(c_in, c_out, kernel, stride, bias=False),
            nn.BatchNorm2d(c_out),
            nn.Tanh(),
            convt(c_out, c_out, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


def _resnet_stages(block_idx: int) -> list[InversionResidualBlock]:
    """The residual blocks of ``InversionResNet`` (lines 356-398) for feature index
    ``block_idx`` of their ResNet-18 (1 = the stem's output; ours split_block + 1). Their
    conditions ``block_idx == 3 or 2`` and ``== 9 or 10`` are always true, so those blocks are
    always there."""
    B = InversionResidualBlock
    if block_idx <= 3:
        return [B(64, 64), B(64, 64)]
    if block_idx <= 5:
        extra = [B(128, 128)] if block_idx == 5 else []
        return [*extra, B(128, 128), B(128, 64, 2, 4), B(64, 64), B(64, 64)]
    if block_idx <= 7:
        extra = [B(256, 256)] if block_idx == 7 else []
        return [
            *extra,
            B(256, 256),
            B(256, 128, 2, 4),
            B(128, 128),
            B(128, 128),
            B(128, 64, 2, 4),
            B(64, 64),
            B(64, 64),
        ]
    if block_idx <= 10:
        return [
            B(512, 512),
            B(512, 512),
            B(512, 256, 2, 4),
            B(256, 256),
            B(256, 256),
            B(256, 128, 2, 4),
            B(128, 128),
            B(128, 64, 2, 4),
            B(64, 64),
            B(64, 64),
        ]
    raise ValueError(f"InversionResNet has no layers for block_idx {block_idx}")


class InversionResNet(nn.Module):
    """``InversionResNet`` (lines 346-412) for ResNet-18 feature ``block_idx``: residual ConvT
    blocks back to 64 channels at the image's side, then ConvT(64 -> nc) + Sigmoid. The stem +
    first stage (block_idx 3, z 64 x 64 x 64): two blocks at 64 channels, 149,699 parameters."""

    def __init__(self, block_idx: int, channels: int):
        super().__init__()
        self.deconv_layers = nn.Sequential(*_resnet_stages(block_idx))
        self.final_layers = nn.Sequential(convt(64, channels), nn.Sigmoid())

    def forward(self, z):
        return self.final_layers(self.deconv_layers(z))


class InversionResNetAE(nn.Module):
    """``InversionResNet_AE`` block_idx 3 (lines 556-643), the gray-box attacker of the ResNet-18
    AE defense: z = 32 x 64 x 64, ConvT(32 -> 64) + BN + Tanh, ConvT(64 -> 64), SiLU, two
    ConvT(64 -> 64); then ConvT + BN + Tanh + ConvT + BN without bias or skip
    (``deconv_layers1``); one residual block; ConvT(64 -> nc) + Sigmoid. 279,107 parameters."""

    def __init__(self, z_channels: int, channels: int):
        super().__init__()
        self.decoder = nn.Sequential(
            convt(z_channels, 64), nn.BatchNorm2d(64), nn.Tanh(), convt(64, 64), nn.SiLU(), convt(64, 64), convt(64, 64)
        )
        self.deconv_layers1 = nn.Sequential(
            convt(64, 64, bias=False), nn.BatchNorm2d(64), nn.Tanh(), convt(64, 64, bias=False), nn.BatchNorm2d(64)
        )
        self.deconv_layers = nn.Sequential(InversionResidualBlock(64, 64))
        self.final_layers = nn.Sequential(convt(64, channels), nn.Sigmoid())

    def forward(self, z):
        return self.final_layers(self.deconv_layers(self.deconv_layers1(self.decoder(z))))


class InversionVGG(nn.Module):
    """``inversion_vgg`` (lines 650-683) for vgg16_bn features after the 5th conv (their
    block_idx 17; our vgg16 split_block 5): z = 256 x s x s with s a quarter of the image's
    side, ConvT(256 -> 256) + BN + Tanh, ConvT(256 -> 128, 4, 2) + BN + Tanh, ConvT(128 -> 128)
    + BN + Tanh, ConvT(128 -> 64, 4, 2) + BN + Tanh, ConvT(64 -> nc) + Sigmoid. 1,396,099."""

    def __init__(self, channels: int):
        super().__init__()
        self.decoder = nn.Sequential(
            *(convt(256, 256), nn.BatchNorm2d(256), nn.Tanh()),
            *(convt(256, 128, 4, 2), nn.BatchNorm2d(128), nn.Tanh()),
            *(convt(128, 128), nn.BatchNorm2d(128), nn.Tanh()),
            *(convt(128, 64, 4, 2), nn.BatchNorm2d(64), nn.Tanh()),
            convt(64, channels),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.decoder(z)


class InversionVGGPv4(nn.Module):
    """``inversion_vgg_pv4`` (lines 686-730), the gray-box attacker of the VGG16 SiftFunnel:
    z = 4 x s x s (a quarter of the image's side), ConvT(4 -> 4) + BN + Tanh, ConvT(4 -> 4),
    Tanh, ConvT(4 -> 32), ConvT(32 -> 128, 4, 2); then ConvT(128 -> 128) + BN + Tanh,
    ConvT(128 -> 64, 4, 2) + BN + Tanh, ConvT(64 -> 64) + BN + Tanh, ConvT(64 -> nc) + Sigmoid.
    385,043 parameters."""

    def __init__(self, z_channels: int, channels: int):
        super().__init__()
        c = z_channels
        self.decoderx = nn.Sequential(
            convt(c, c), nn.BatchNorm2d(c), nn.Tanh(), convt(c, c), nn.Tanh(), convt(c, 32), convt(32, 128, 4, 2)
        )
        self.decoder = nn.Sequential(
            *(convt(128, 128), nn.BatchNorm2d(128), nn.Tanh()),
            *(convt(128, 64, 4, 2), nn.BatchNorm2d(64), nn.Tanh()),
            *(convt(64, 64), nn.BatchNorm2d(64), nn.Tanh()),
            convt(64, channels),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.decoder(self.decoderx(z))


def authors_generator(
    arch: str,
    arch_settings: dict,
    defense: str,
    deepened: bool,
    gray_box: bool,
    z_shape: tuple[int, int, int],
    plain_shape: tuple[int, int, int],
    image_shape: tuple[int, int, int],
) -> tuple[nn.Module, str] | tuple[None, str]:
    """(the authors' generator, its name) for a target, or (None, why there is none).

    ``arch``/``arch_settings``: the registry architecture and its builder arguments;
    ``defense``: the registry defense (``ae``, ``siftfunnel``, ...); ``deepened``: the defense
    adds layers to the edge; ``gray_box``: the attacker mirrors them (``match_depth``);
    ``z_shape``: the observed features; ``plain_shape``: the plain edge's output.

    Gray-box against a deepened edge: the generator that mirrors the defense's layers. Every
    other case: the plain edge's generator, when z has the plain edge's shape (the defenses
    that leave the edge alone, the compensation module's output). The authors' code has no
    black-box generator for a deepened edge."""
    nc, side = image_shape[0], image_shape[1]
    split = arch_settings.get("split_block")
    if deepened and gray_box:
        if arch == "cnn" and defense == "ae" and z_shape == (plain_shape[0] // 2, *plain_shape[1:]) and split == 2:
            return AEInversion4(z_shape[0], nc), "AE_Inversion_4"
        if arch == "cnn" and defense == "siftfunnel" and split == 2 and z_shape[1] == side // 4:
            return Pv4Inversion4(z_shape[0], plain_shape[0] // 2, nc), "pv4_Inversion_4"
        if arch == "resnet18" and defense == "ae" and z_shape == (32, side, side):
            return InversionResNetAE(z_shape[0], nc), "InversionResNet_AE"
        if arch == "vgg16" and defense == "siftfunnel" and z_shape[1] == side // 4:
            return InversionVGGPv4(z_shape[0], nc), "inversion_vgg_pv4"
        return None, f"the authors' code has no gray-box generator for {arch} {defense} with z {list(z_shape)}"
    if z_shape != plain_shape:
        why = "black-box attacker of a deepened edge" if deepened else f"z {list(z_shape)}"
        return None, f"the authors' code has no generator for the {why} ({arch}, {defense})"
    if arch == "cnn":
        return Inversion4(z_shape, image_shape), "Inversion_4"
    if arch == "resnet18":
        return InversionResNet(split + 1, nc), "InversionResNet"
    if arch == "vgg16" and split == 5:
        return InversionVGG(nc), "inversion_vgg"
    return None, f"the authors' code has no generator for {arch} split at block {split} (z {list(z_shape)})"
