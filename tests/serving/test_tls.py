"""--ssl_config_file: TLS on the gRPC port with client certificate verification (SSLConfig
server_key, server_cert, custom_ca, client_verify)."""
from __future__ import annotations

import datetime
import ipaddress

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import client


def _certificates():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()

    def issue(subject, key, issuer, issuer_key, ca=False, san=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(issuer_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = issue("test-ca", ca_key, "test-ca", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = issue("localhost", server_key, "test-ca", ca_key, san=[
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = issue("client", client_key, "test-ca", ca_key)
    return {"ca": ca_cert, "server_key": pem_key(server_key), "server_cert": server_cert,
            "client_key": pem_key(client_key), "client_cert": client_cert}


def _text_proto_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.fixture(scope="module")
def certs():
    return _certificates()


@pytest.fixture(scope="module")
def server(models, tmp_path_factory, helpers, certs):
    root = tmp_path_factory.mktemp("tls")
    helpers.copy_version(models.half_plus_two, root / "half_plus_two", helpers.VERSION)
    ssl_config = root / "ssl_config.txt"
    ssl_config.write_text(
        f"server_key: {_text_proto_string(certs['server_key'])}\n"
        f"server_cert: {_text_proto_string(certs['server_cert'])}\n"
        f"custom_ca: {_text_proto_string(certs['ca'])}\n"
        "client_verify: true\n")
    proc = helpers.start_module_server(tmp_path_factory, "tls_log", [
        "--model_name=default", f"--model_base_path={root / 'half_plus_two'}",
        f"--ssl_config_file={ssl_config}"], rest=False)
    yield proc
    proc.stop()


def _predict(channel):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0], dtype=tf.float32))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, 10)


def test_tls_with_client_certificate(server, certs):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs["ca"].encode(), private_key=certs["client_key"].encode(),
        certificate_chain=certs["client_cert"].encode())
    with grpc.secure_channel(server.grpc_address, credentials) as channel:
        assert list(_predict(channel).outputs["y"].float_val) == [3.0]
    assert "gRPC uses TLS with client certificate verification" in server.log_text()


def test_tls_refuses_clients_without_certificate_and_plaintext(server, certs):
    no_client_cert = grpc.ssl_channel_credentials(root_certificates=certs["ca"].encode())
    with grpc.secure_channel(server.grpc_address, no_client_cert) as channel:
        with pytest.raises(grpc.RpcError) as excinfo:
            _predict(channel)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(server.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as excinfo:
            _predict(channel)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE


def test_ssl_config_without_key_fails_at_startup(tmp_path, start_server):
    config = tmp_path / "ssl.txt"
    config.write_text('server_cert: "x"\n')
    proc = start_server(["--model_base_path=/nonexistent", f"--ssl_config_file={config}"],
                        rest=False, wait=False)
    assert proc.wait_exit(30) != 0
    assert "needs both server_key and server_cert" in proc.log_text()


def test_rank_client_over_tls(server, certs, models):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs["ca"].encode(), private_key=certs["client_key"].encode(),
        certificate_chain=certs["client_cert"].encode())
    with pytest.raises(client.RankError, match="NOT_FOUND"):
        # the TLS server serves half_plus_two, not a ranker: the call itself must get through
        client.rank(server.grpc_address, "q", [{"product_id": "a", "title": "t", "brand": "b",
                                                 "category": "c", "price": 1.0}],
                    credentials=credentials)
