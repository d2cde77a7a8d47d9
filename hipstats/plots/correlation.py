"""Heat map of a correlation matrix (e.g. an MMRM's residual correlation across visits).

Examples
--------
>>> import pandas as pd
>>> from hipstats.plots.correlation import correlation_heatmap
>>> R = pd.DataFrame([[1.0, 0.6], [0.6, 1.0]], index=["week 0", "week 12"], columns=["week 0", "week 12"])
>>> fig = correlation_heatmap(R, title="Residual correlation")
>>> fig.axes[0].get_title()
'Residual correlation'
"""

from __future__ import annotations

import pandas as pd

from hipstats.plots.style import theme

__all__ = ["correlation_heatmap"]


def correlation_heatmap(R: pd.DataFrame, *, title: str = "", label: str = "correlation", ax=None):
    """Figure: the matrix ``R`` (values in [-1, 1]) with each entry written in its cell.

    Parameters
    ----------
    R : DataFrame
        Square correlation matrix; its index labels the rows and columns.
    title, label : str
        Axes title and colour-bar label.
    ax : matplotlib Axes, optional
    """
    import matplotlib.pyplot as plt

    n = len(R)
    with theme():
        if ax is None:
            fig, ax = plt.subplots(figsize=(1.6 + 0.7 * n, 1.0 + 0.6 * n))
        else:
            fig = ax.figure
        im = ax.imshow(R.to_numpy(float), vmin=-1, vmax=1, cmap="RdBu_r")
        labels = [str(v) for v in R.index]
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{R.iat[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.grid(False)
        fig.colorbar(im, ax=ax, label=label)
        ax.set_title(title)
    return fig
