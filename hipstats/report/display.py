"""Notebook display settings for reports: every figure appears exactly once.

With the inline backend a function that returns a matplotlib Figure shows it twice (once
as the cell's result, once when the backend flushes open figures after the cell).
:func:`setup_figures` replaces the flush with one that skips the figure already shown as
the cell's result, so plot functions can return their Figure (script-friendly) and notebooks
stay thin. Figures are SVG (vector: sharp on any screen and in print; text drawn as paths, so no
font is loaded), raster parts inside them (heat maps) at 200 dpi. Warnings become plain-language
notes (:func:`hipstats.report.notes.capture_warnings`).
"""

from __future__ import annotations

__all__ = ["setup_figures"]

_STATE = {"installed": False}


def setup_figures(dpi: int = 200, fmt: str = "svg") -> None:
    """Show each figure once per cell (inline backend, ``fmt`` "svg" or "png"), warnings as notes;
    no-op outside IPython."""
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return
    ip = get_ipython()
    if ip is None or _STATE["installed"]:
        return
    import matplotlib  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415  (activates the inline backend and its hook)
    from matplotlib._pylab_helpers import Gcf  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    from hipstats.report.notes import capture_warnings  # noqa: PLC0415

    capture_warnings()
    matplotlib.rcParams["figure.dpi"] = dpi
    matplotlib.rcParams["savefig.dpi"] = dpi
    matplotlib.rcParams["svg.fonttype"] = "path"
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats  # noqa: PLC0415

        set_matplotlib_formats(fmt, bbox_inches="tight")
    except ImportError:  # pragma: no cover
        pass
    try:
        from matplotlib_inline.backend_inline import flush_figures  # noqa: PLC0415

        ip.events.unregister("post_execute", flush_figures)
    except (ImportError, ValueError):
        pass

    def _flush(result) -> None:
        from IPython.display import display  # noqa: PLC0415

        shown = result.result if isinstance(getattr(result, "result", None), Figure) else None
        try:
            for manager in Gcf.get_all_fig_managers():
                fig = manager.canvas.figure
                if fig is not shown:
                    display(fig)
        finally:
            plt.close("all")

    ip.events.register("post_run_cell", _flush)
    _STATE["installed"] = True
