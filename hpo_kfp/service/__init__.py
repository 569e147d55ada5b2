"""``hpo-kfp serve``: tuning as a service, over the experiment store.

Three APIs on one store:

* Kruize HPO's REST API (:mod:`hpo_kfp.service.kruize`), so Kruize's clients work unchanged;
* hpo-kfp's own versioned REST API, ``/v1`` with its OpenAPI document (:mod:`hpo_kfp.service.api`);
* Katib's Suggestion and EarlyStopping gRPC services, ``api.v1.beta1``, stateless
  (:mod:`hpo_kfp.service.katib`).

The REST APIs keep every experiment in the store (:mod:`hpo_kfp.service.tuning`), so a
restarted server, or several servers on one store, carry on the same experiments that
``hpo-kfp report`` and the pipelines see. Needs the ``serve`` extra (FastAPI, uvicorn,
grpcio); this package's modules import them, so import it only where they are installed.
"""

from __future__ import annotations
