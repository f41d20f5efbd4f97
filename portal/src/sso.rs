//! SAML 2.0 Web Browser SSO (SAML 2.0 Profiles §4.1) with samael and xmlsec:
//! reading an IdP's metadata, our SP metadata, the AuthnRequest (HTTP-Redirect
//! binding, Bindings §3.4) and verifying a Response (HTTP-POST binding, §3.5).
//!
//! Only what a verified signature covers is trusted: xmlsec checks every
//! signature against the practice's IdP certificates and samael reduces the
//! document to the signed elements; we read the assertion from that reduced
//! document alone. Before that, a Response with more or fewer than one
//! assertion (the shape of signature-wrapping attacks), an encrypted assertion
//! or a DTD is refused outright. Time comes from the caller (the store's clock).
#![allow(clippy::doc_markdown)] // SAML's words (IdP, AuthnRequest, NameID) read better bare

use base64::Engine as _;
use chrono::{DateTime, Utc};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};
use samael::metadata::{EntityDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING, IndexedEndpoint, SpSsoDescriptor};
use samael::schema::{Assertion, AuthnRequest, Issuer, NameIdPolicy, Response};
use samael::service_provider::ServiceProvider;
use samael::traits::ToXml;
use store::accounts::saml::VerifiedAssertion;

const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
/// Clock difference we tolerate between the IdP and us.
const SKEW: i64 = 120;
/// How old an assertion may be when it arrives.
const MAX_AGE: i64 = 5 * 60;
/// Largest Response we read (base64 characters).
const MAX_RESPONSE: usize = 512 * 1024;
/// Signature algorithms we accept (no SHA-1, RFC 6931 §2.3).
const ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];
/// Attribute names IdPs use for the email address (Entra ID, Okta/Google, LDAP OID).
const EMAIL_ATTRIBUTES: [&str; 5] = [
    "email",
    "mail",
    "emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];

/// A practice's identity provider, read from its metadata.
#[derive(Debug, Clone)]
pub struct Idp {
    /// The IdP's entity id: every assertion's `Issuer`.
    pub entity_id: String,
    /// Where the HTTP-Redirect binding sends AuthnRequests.
    pub sso_url: String,
    certs: Vec<CertificateDer>,
}

/// Reads IdP metadata (one `EntityDescriptor`): entity id, HTTP-Redirect SSO
/// URL (https) and at least one signing certificate. The error is for the admin.
pub fn parse_idp_metadata(xml: &str) -> Result<Idp, String> {
    if has_dtd(xml) {
        return Err("the metadata must not contain a DOCTYPE".into());
    }
    let descriptor: EntityDescriptor = xml
        .parse()
        .map_err(|error| format!("not SAML metadata (one EntityDescriptor): {error}"))?;
    let entity_id = descriptor
        .entity_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or("the metadata has no entityID")?;
    let sp = ServiceProvider {
        idp_metadata: descriptor,
        ..ServiceProvider::default()
    };
    let sso_url = sp
        .sso_binding_location(HTTP_REDIRECT_BINDING)
        .ok_or("the metadata has no SingleSignOnService with the HTTP-Redirect binding")?;
    if !sso_url.starts_with("https://") {
        return Err(format!("the IdP's sign-on URL must use https: {sso_url}"));
    }
    let certs = sp
        .idp_signing_certs()
        .map_err(|error| format!("a signing certificate in the metadata is not valid: {error}"))?
        .ok_or("the metadata has no signing certificate (KeyDescriptor use=\"signing\")")?;
    Ok(Idp {
        entity_id,
        sso_url,
        certs,
    })
}

/// This portal as a service provider for one practice.
#[derive(Debug, Clone)]
pub struct Sp {
    /// Our entity id: the metadata URL, which is also the `Audience` we require.
    pub entity_id: String,
    /// The assertion consumer service (HTTP-POST).
    pub acs_url: String,
}

impl Sp {
    /// The SP for the practice with `domain`, under `public_url`.
    pub fn new(public_url: &str, domain: &str) -> Self {
        let base = format!("{}/saml/{domain}", public_url.trim_end_matches('/'));
        Self {
            entity_id: format!("{base}/metadata"),
            acs_url: format!("{base}/acs"),
        }
    }

    /// Our SP metadata: the ACS, NameID format emailAddress, signed assertions wanted.
    pub fn metadata(&self) -> Result<String, String> {
        let descriptor = EntityDescriptor {
            entity_id: Some(self.entity_id.clone()),
            sp_sso_descriptors: Some(vec![SpSsoDescriptor {
                protocol_support_enumeration: Some("urn:oasis:names:tc:SAML:2.0:protocol".into()),
                authn_requests_signed: Some(false),
                want_assertions_signed: Some(true),
                name_id_formats: Some(vec![EMAIL_FORMAT.into()]),
                assertion_consumer_services: vec![IndexedEndpoint {
                    binding: HTTP_POST_BINDING.into(),
                    location: self.acs_url.clone(),
                    index: 0,
                    is_default: Some(true),
                    ..IndexedEndpoint::default()
                }],
                ..SpSsoDescriptor::default()
            }]),
            ..EntityDescriptor::default()
        };
        descriptor.to_string().map_err(|error| format!("{error:?}"))
    }

    /// The IdP URL that carries a new AuthnRequest `id` (HTTP-Redirect binding).
    pub fn authn_request_url(&self, idp: &Idp, id: &str, now: i64) -> Result<String, String> {
        let request = AuthnRequest {
            id: id.to_owned(),
            version: "2.0".into(),
            issue_instant: time(now),
            destination: Some(idp.sso_url.clone()),
            assertion_consumer_service_url: Some(self.acs_url.clone()),
            protocol_binding: Some(HTTP_POST_BINDING.into()),
            issuer: Some(Issuer {
                value: Some(self.entity_id.clone()),
                ..Issuer::default()
            }),
            name_id_policy: Some(NameIdPolicy {
                format: Some(EMAIL_FORMAT.into()),
                allow_create: Some(true),
                ..NameIdPolicy::default()
            }),
            ..AuthnRequest::default()
        };
        let url = request
            .redirect("")
            .map_err(|error| error.to_string())?
            .ok_or("no destination")?;
        Ok(url.as_str().to_owned())
    }

    /// Verifies a base64 `SAMLResponse` from the HTTP-POST binding at `now`.
    /// The error is a short reason for the log; the person sees none of it.
    pub fn verify(&self, idp: &Idp, encoded: &str, now: i64) -> Result<VerifiedAssertion, &'static str> {
        if encoded.len() > MAX_RESPONSE {
            return Err("response too large");
        }
        let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| "response is not base64")?;
        let xml = String::from_utf8(bytes).map_err(|_| "response is not UTF-8")?;
        if has_dtd(&xml) {
            return Err("response has a DTD");
        }
        check_shape(&xml)?;
        let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
            &xml,
            &idp.certs,
            ReduceMode::ValidateAndMarkNoAncestors,
            Some(&ALGORITHMS),
        )
        .map_err(|_| "signature missing or not valid for the practice's IdP")?;
        let (assertion, response_in_response_to) = match root_element(&reduced) {
            Some(Root::Response) => {
                let response: Response = reduced.parse().map_err(|_| "signed response does not parse")?;
                self.check_response(idp, &response)?;
                let assertion = response.assertion.ok_or("signed response holds no assertion")?;
                (assertion, response.in_response_to)
            }
            Some(Root::Assertion) => (
                reduced
                    .parse::<Assertion>()
                    .map_err(|_| "signed assertion does not parse")?,
                None,
            ),
            None => return Err("signature covers neither the response nor the assertion"),
        };
        let verified = self.check_assertion(idp, &assertion, now)?;
        if response_in_response_to.is_some_and(|id| id != verified.in_response_to) {
            return Err("response and assertion answer different requests");
        }
        Ok(verified)
    }

    fn check_response(&self, idp: &Idp, response: &Response) -> Result<(), &'static str> {
        if response.destination.as_deref() != Some(self.acs_url.as_str()) {
            return Err("response Destination is not our ACS");
        }
        if response
            .issuer
            .as_ref()
            .is_some_and(|issuer| issuer.value.as_deref() != Some(idp.entity_id.as_str()))
        {
            return Err("response Issuer is not the practice's IdP");
        }
        let status = response.status.as_ref().and_then(|s| s.status_code.value.as_deref());
        if status != Some(SUCCESS) {
            return Err("response status is not Success");
        }
        Ok(())
    }

    fn check_assertion(&self, idp: &Idp, assertion: &Assertion, now: i64) -> Result<VerifiedAssertion, &'static str> {
        if assertion.issuer.value.as_deref() != Some(idp.entity_id.as_str()) {
            return Err("assertion Issuer is not the practice's IdP");
        }
        let issued = assertion.issue_instant.timestamp();
        if issued > now + SKEW || issued + MAX_AGE + SKEW < now {
            return Err("assertion IssueInstant too old or in the future");
        }
        let conditions = assertion.conditions.as_ref().ok_or("assertion has no Conditions")?;
        if conditions.not_before.is_some_and(|t| t.timestamp() > now + SKEW) {
            return Err("assertion not yet valid (NotBefore)");
        }
        let not_on_or_after = conditions
            .not_on_or_after
            .ok_or("assertion has no NotOnOrAfter")?
            .timestamp();
        if not_on_or_after + SKEW <= now {
            return Err("assertion expired (NotOnOrAfter)");
        }
        let audience_ok = conditions
            .audience_restrictions
            .iter()
            .flatten()
            .any(|r| r.audience.contains(&self.entity_id));
        if !audience_ok {
            return Err("assertion Audience is not this SP");
        }
        let subject = assertion.subject.as_ref().ok_or("assertion has no Subject")?;
        let mut confirmed = None;
        for confirmation in subject.subject_confirmations.iter().flatten() {
            let Some(data) = confirmation.subject_confirmation_data.as_ref() else {
                continue;
            };
            let live = data.not_on_or_after.is_some_and(|t| t.timestamp() + SKEW > now)
                && data.not_before.is_none_or(|t| t.timestamp() <= now + SKEW);
            if confirmation.method.as_deref() == Some(BEARER)
                && live
                && data.recipient.as_deref() == Some(self.acs_url.as_str())
                && let Some(id) = &data.in_response_to
            {
                let until = data.not_on_or_after.map_or(now, |t| t.timestamp());
                confirmed = Some((id.clone(), until));
                break;
            }
        }
        let (in_response_to, confirmation_until) =
            confirmed.ok_or("no live bearer SubjectConfirmation for our ACS answering a request")?;
        let email = email_of(assertion).ok_or("assertion names no email address")?;
        Ok(VerifiedAssertion {
            assertion_id: assertion.id.clone(),
            in_response_to,
            email,
            expires_at: not_on_or_after.max(confirmation_until) + SKEW,
        })
    }
}

/// The address the assertion names: the NameID if it is one, else an email attribute.
fn email_of(assertion: &Assertion) -> Option<String> {
    let name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.clone());
    let attributes = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .filter(|a| {
            [a.name.as_deref(), a.friendly_name.as_deref()]
                .into_iter()
                .flatten()
                .any(|n| EMAIL_ATTRIBUTES.iter().any(|e| e.eq_ignore_ascii_case(n)))
        })
        .flat_map(|a| a.values.iter().filter_map(|v| v.value.clone()));
    name_id
        .into_iter()
        .chain(attributes)
        .find_map(|candidate| store::accounts::normalize_email(&candidate).ok())
}

fn time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

fn has_dtd(xml: &str) -> bool {
    xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY")
}

/// Refuses any document but a Response with exactly one
/// SAML assertion in it, and no encrypted assertion: a wrapped or duplicated
/// assertion is an attack, never something an IdP sends.
fn check_shape(xml: &str) -> Result<(), &'static str> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut assertions = 0;
    let mut root = None;
    loop {
        match reader.read_resolved_event() {
            Ok((ns, Event::Start(e) | Event::Empty(e))) => {
                let local = e.local_name();
                let local = local.as_ref();
                if root.is_none() {
                    root = Some(matches!(
                        (&ns, local),
                        (ResolveResult::Bound(n), b"Response") if n.as_ref() == PROTOCOL_NS
                    ));
                }
                if local == b"EncryptedAssertion" {
                    return Err("encrypted assertions are not accepted");
                }
                if local == b"Assertion" {
                    assertions += 1;
                }
            }
            Ok((_, Event::Eof)) => break,
            Ok(_) => {}
            Err(_) => return Err("response is not well-formed XML"),
        }
    }
    match (root, assertions) {
        (Some(true), 1) => Ok(()),
        (Some(true), 0) => Err("response holds no assertion"),
        (Some(true), _) => Err("response holds more than one assertion (signature wrapping?)"),
        _ => Err("not a SAML Response"),
    }
}

enum Root {
    Response,
    Assertion,
}

/// The root element of the reduced (signed-only) document.
fn root_element(xml: &str) -> Option<Root> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    loop {
        match reader.read_resolved_event() {
            Ok((ResolveResult::Bound(ns), Event::Start(e) | Event::Empty(e))) => {
                return match (ns.as_ref(), e.local_name().as_ref()) {
                    (PROTOCOL_NS, b"Response") => Some(Root::Response),
                    (ASSERTION_NS, b"Assertion") => Some(Root::Assertion),
                    _ => None,
                };
            }
            Ok((_, Event::Start(_) | Event::Empty(_) | Event::Eof)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHELL: &str = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">"#;

    #[test]
    fn shape_wants_exactly_one_plain_assertion() {
        let one = format!("{SHELL}<saml:Assertion ID=\"a\"/></samlp:Response>");
        assert_eq!(check_shape(&one), Ok(()));
        let two = format!("{SHELL}<saml:Assertion ID=\"a\"/><x><saml:Assertion ID=\"b\"/></x></samlp:Response>");
        assert!(check_shape(&two).is_err());
        let none = format!("{SHELL}</samlp:Response>");
        assert!(check_shape(&none).is_err());
        let encrypted = format!("{SHELL}<saml:EncryptedAssertion/></samlp:Response>");
        assert!(check_shape(&encrypted).is_err());
        assert!(check_shape("<Response><Assertion/></Response>").is_err());
        assert!(check_shape("not xml <").is_err());
    }

    #[test]
    fn dtds_are_refused() {
        assert!(has_dtd("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>"));
        let sp = Sp::new("https://portal.example", "smiles.example");
        let idp = Idp {
            entity_id: "https://idp.example".into(),
            sso_url: "https://idp.example/sso".into(),
            certs: Vec::new(),
        };
        let doc = base64::engine::general_purpose::STANDARD.encode("<!DOCTYPE x><x/>");
        assert_eq!(sp.verify(&idp, &doc, 0).unwrap_err(), "response has a DTD");
    }

    #[test]
    fn sp_urls_and_metadata() {
        let sp = Sp::new("https://portal.example/", "smiles.example");
        assert_eq!(sp.entity_id, "https://portal.example/saml/smiles.example/metadata");
        assert_eq!(sp.acs_url, "https://portal.example/saml/smiles.example/acs");
        let xml = sp.metadata().unwrap();
        assert!(xml.contains("entityID=\"https://portal.example/saml/smiles.example/metadata\""));
        assert!(xml.contains("Location=\"https://portal.example/saml/smiles.example/acs\""));
    }

    #[test]
    fn idp_metadata_needs_redirect_sso_and_a_certificate() {
        let no_cert = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#;
        let error = parse_idp_metadata(no_cert).unwrap_err();
        assert!(error.contains("signing certificate"), "{error}");
        assert!(parse_idp_metadata("<x/>").is_err());
    }
}
