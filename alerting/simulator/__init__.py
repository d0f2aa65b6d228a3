"""The DI simulator: a fake DI API (``di_api``), realistic traffic (``traffic``) and the two
together as one embedded server (``embedded``). Not a production source: the service reaches
it only through ``alerting.source.open`` (``source.kind: simulator``) and ``alerting simulate``.
"""
