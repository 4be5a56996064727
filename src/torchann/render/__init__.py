"""HTML and SVG drawn as strings from plain data: the page style, tables, chart boxes, a
history's curves as series (``html``) and inline line charts, histograms and scatter plots
(``svg``). Shared by the run report and the notebook views; knows nothing of torch or models.
May import: ``core``.
"""
