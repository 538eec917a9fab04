"""Image U-Nets: DDPM++ and NCSN++ (Song et al. 2021) and ADM (Dhariwal & Nichol 2021), as
configured in EDM (Karras et al. 2022), for (channels, size, size) data."""

from genkit.hookspecs import hookimpl
from genkit_unet.adm import ADM
from genkit_unet.song_unet import NCSNpp, SongUNet


@hookimpl
def register_networks(register):
    register("ddpmpp", SongUNet)
    register("ncsnpp", NCSNpp)
    register("adm", ADM)
