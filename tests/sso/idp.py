#!/usr/bin/python3
"""A minimal SAML 2.0 identity provider built on pysaml2, for Sealpost's SSO tests.

  idp.py metadata --dir D --entity-id E --sso-url U
      makes D/idp.key and D/idp.crt (openssl, RSA 2048) if missing and prints
      the IdP's metadata XML.
  idp.py respond --dir D --entity-id E --sso-url U --sp-metadata FILE
                 --request SAMLRequest --email ADDR --now UNIX [--sign WHAT]
                 [--audience SP_ENTITY_ID]
      answers an HTTP-Redirect AuthnRequest with a Response (HTTP-POST binding)
      for ADDR, signed with RSA-SHA256 as WHAT says (response+assertion,
      assertion, response, none), dated as if the time were UNIX, and prints
      it base64-encoded (the SAMLResponse form field).

Nothing here is secret: keys are made per test run in a temporary folder.
"""
import argparse
import base64
import datetime as _dt
import os
import subprocess
import sys
import tempfile
import time as _time


def fake_time(now):
    """pysaml2 reads the system time; make it read `now` (the SP's test clock)."""
    offset = now - _time.time()
    real_gmtime = _time.gmtime

    def gmtime(secs=None):
        return real_gmtime(_time.time() + offset if secs is None else secs)

    _time.gmtime = gmtime

    class FakeDateTime(_dt.datetime):
        @classmethod
        def utcnow(cls):
            return _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=_time.time() + offset)

    import saml2.time_util
    saml2.time_util.datetime = FakeDateTime


def keypair(folder):
    key, crt = os.path.join(folder, "idp.key"), os.path.join(folder, "idp.crt")
    if not os.path.exists(crt):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
             "-subj", "/CN=Sealpost test IdP", "-keyout", key, "-out", crt],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, crt


def metadata(args):
    _, crt = keypair(args.dir)
    with open(crt) as f:
        body = "".join(line.strip() for line in f if "CERTIFICATE" not in line)
    print(f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{args.entity_id}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{args.sso_url}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>""")


def respond(args):
    fake_time(args.now)
    from saml2 import BINDING_HTTP_REDIRECT, saml, xmldsig
    from saml2.config import IdPConfig
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAME_FORMAT_URI
    from saml2.server import Server

    key, crt = keypair(args.dir)
    work = tempfile.mkdtemp()
    with open(args.sp_metadata) as f:
        sp_md = f.read()
    files = [args.sp_metadata]
    if args.audience:
        # Another SP (same ACS) the IdP knows, so it will address an assertion to it.
        other = os.path.join(work, "other-sp.xml")
        import re
        with open(other, "w") as f:
            f.write(re.sub(r'entityID="[^"]*"', f'entityID="{args.audience}"', sp_md, count=1))
        files.append(other)
    config = IdPConfig()
    config.load({
        "entityid": args.entity_id,
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(args.sso_url, BINDING_HTTP_REDIRECT)]},
            "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                   "name_form": NAME_FORMAT_URI}},
            "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
            "want_authn_requests_signed": False,
        }},
        "key_file": key,
        "cert_file": crt,
        "metadata": {"local": files},
        "xmlsec_binary": "/usr/bin/xmlsec1",
    })
    server = Server(config=config)
    request = server.parse_authn_request(args.request, BINDING_HTTP_REDIRECT).message
    sign = args.sign.split("+") if args.sign != "none" else []
    response = server.create_authn_response(
        identity={"mail": [args.email]},
        in_response_to=request.id,
        destination=request.assertion_consumer_service_url,
        sp_entity_id=args.audience or request.issuer.text,
        name_id=saml.NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=args.email),
        authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED, "authn_auth": args.entity_id},
        sign_response="response" in sign,
        sign_assertion="assertion" in sign,
        sign_alg=xmldsig.SIG_RSA_SHA256,
        digest_alg=xmldsig.DIGEST_SHA256,
    )
    print(base64.b64encode(str(response).encode()).decode())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["metadata", "respond"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--entity-id", required=True)
    parser.add_argument("--sso-url", required=True)
    parser.add_argument("--sp-metadata")
    parser.add_argument("--request")
    parser.add_argument("--email")
    parser.add_argument("--now", type=int)
    parser.add_argument("--sign", default="response+assertion")
    parser.add_argument("--audience")
    args = parser.parse_args()
    if args.command == "metadata":
        metadata(args)
    else:
        respond(args)


if __name__ == "__main__":
    sys.exit(main())
