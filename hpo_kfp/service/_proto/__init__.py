"""Katib's ``api.v1.beta1`` messages and services, and gRPC health messages, as protobuf.

The ``*_pb2*`` modules are generated from the ``.proto`` files beside them by
``python -m hpo_kfp.service._proto`` (grpcio-tools, in the dev group; a release whose
``protoc`` writes code for protobuf 6, the project's range). They are committed so that
installing the ``serve`` extra needs no code generator; a test regenerates them and fails
when the committed ones differ.
"""
