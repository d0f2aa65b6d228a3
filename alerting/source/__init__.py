"""Where events come from: the DI API (``jumpcloud``), an events file (``file_source``,
``files``), or the simulator behind the DI client; ``Source`` in ``base``, ``open_source``
in ``open``."""
