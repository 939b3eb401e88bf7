"""HTTP layer: parse, authorise, call one engine service, serialise. Built by :func:`api.app.create_app`."""
