"""Catalog programs: the loader (``catalog``), the offline example runner (``examples``) and
the writer (``writer``: front matter, ``watt catalog new``, ``/save``)."""
