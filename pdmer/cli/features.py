"""``pdmer extract`` and ``pdmer download imagebind``: the audio front end's commands."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pdmer.cli._group import download, main
from pdmer.cli._common import (
    FiniteFloatRange,
    jobs_option,
    quiet_option,
    report_failures,
    transform_each,
)
from pdmer.cli._inputs import audio_files, inputs_options


@download.command("imagebind")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Use this local imagebind_huge.pth instead of downloading it.")
@click.option("--url", default=None, help="Download from this address (a mirror) instead "
              "of Meta's.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the audio weights (default: the user cache, where "
              "global_encoder='imagebind' looks).")
@click.option("--keep-checkpoint", is_flag=True,
              help="Keep the downloaded 4.5 GB checkpoint after extracting the audio branch.")
@click.option("--force", is_flag=True, help="Reinstall even if the weights are present.")
@quiet_option
def download_imagebind(checkpoint, url, output, keep_checkpoint, force, quiet):
    """Install ImageBind-huge's audio branch (the 'imagebind' global encoder).

    Downloads Meta's imagebind_huge.pth (about 4.5 GB, resumable), keeps only
    the audio branch (about 345 MB) as a safetensors file in the user cache
    and checks that it loads. The weights are licensed CC BY-NC-SA 4.0
    (non-commercial use only).
    """
    from pdmer.features import imagebind_weights_path
    from pdmer.features.imagebind import (
        CHECKPOINT_URL,
        LICENSE,
        LICENSE_URL,
        install_imagebind,
    )

    url = url or CHECKPOINT_URL
    click.echo(f"ImageBind weights by Meta AI are licensed {LICENSE} ({LICENSE_URL}):\n"
               "non-commercial use only, with attribution; adaptations must be shared "
               "alike.")
    target = output or imagebind_weights_path()
    before = target.stat().st_mtime_ns if target.is_file() else None
    start = time.perf_counter()
    path = install_imagebind(checkpoint, url=url, output=output, keep_checkpoint=keep_checkpoint,
                             force=force, progress=not quiet)
    size = path.stat().st_size / 2**20
    state = ("already installed" if path.stat().st_mtime_ns == before
             else f"installed in {time.perf_counter() - start:.0f} s")
    click.echo(f"ImageBind audio weights: {path} ({size:.0f} MiB, {state})")
    if output is not None and path != imagebind_weights_path():
        click.echo("Use them with ImageBindEncoder(weights=...) or "
                   "`pdmer extract --weights ...`.")


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True))
@inputs_options
@click.option("--encoder", default="auto", show_default=True,
              help="Global encoder: auto, logmel-stats, imagebind (see `pdmer info`).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False),
              help="ImageBind weights file (implies --encoder imagebind).")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto",
              show_default=True, help="ImageBind arithmetic, as the estimators' precision: "
              "auto is bf16 on CUDA, fp32 on the CPU; bf16 on a CPU with AVX512-BF16 or AMX "
              "is ~3x faster, embeddings within cosine 0.9999 (fp32, with a warning, on "
              "other CPUs).")
@click.option("--frame-offset", type=FiniteFloatRange(min=0), default=0.0, show_default=True,
              help="Audio time of label frame 0 in seconds (15 for DEAM, PMEmo).")
@click.option("--global-window", type=FiniteFloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds of audio around each frame for the encoder.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Feature cache folder [default: the user cache's features folder].")
@jobs_option(default=1, show_default=True,
             help="Songs decoded and analysed in parallel (-1: all cores).")
@click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda.")
@click.option("--skip-errors", is_flag=True,
              help="Report unreadable or too-short files and go on with the others.")
@quiet_option
def extract(inputs, list_files, recursive, encoder, weights, precision, frame_offset,
            global_window, cache_dir, n_jobs, device, skip_errors, quiet):
    """Extract features of audio files into the feature cache.

    INPUTS are audio files, folders of them or list files. Later training
    and prediction with the same settings (AudioFeatures(cache_dir=...))
    read the cached features instead of decoding and encoding the audio
    again.
    """
    from pdmer.features import AudioFeatures, ImageBindEncoder, cache_size, default_feature_dir

    files = audio_files(inputs, list_files, recursive)
    cache_dir = Path(cache_dir) if cache_dir else default_feature_dir()
    global_encoder = encoder
    if weights is not None or precision != "auto":
        if encoder not in ("auto", "imagebind"):
            raise click.BadParameter("--weights and --precision are for the imagebind "
                                     "encoder.", param_hint="--weights/--precision")
        global_encoder = ImageBindEncoder(weights, device=device, precision=precision)
    front = AudioFeatures(frame_offset=frame_offset, global_encoder=global_encoder,
                          global_window=global_window, cache_dir=cache_dir, n_jobs=n_jobs,
                          device=device, progress=not quiet)
    resolved = front.encoder()
    if not quiet:
        click.echo(f"{len(files)} audio files; global encoder: {resolved.name}; "
                   f"cache: {cache_dir}", err=True)
    start = time.perf_counter()
    failures = []
    results = (list(transform_each(front, files, failures).values()) if skip_errors
               else front.transform(files))
    seconds = time.perf_counter() - start
    frames = sum(r.n_frames for r in results)
    if not quiet:
        click.echo(f"Extracted {len(results)} songs ({frames} frames, {frames / 2:.0f} s) "
                   f"in {seconds:.1f} s with encoder {resolved.name}; cache {cache_dir} "
                   f"holds {cache_size(cache_dir) / 2**20:.1f} MiB.")
    report_failures(failures)
