"""The order of the gallery's examples: from first steps to the paper."""

ORDER = [
    "plot_quickstart.py",
    "plot_personalize_listener.py",
    "plot_grid_search.py",
    "plot_compare_baselines.py",
    "plot_imagebind_features.py",
    "reproduce_deam.py",
]


class ExampleOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``: the list
    above first, any other example after them by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = str(filename)
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self):
        return "ExampleOrder"
