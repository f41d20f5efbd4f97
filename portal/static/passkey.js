// Passkeys (WebAuthn) for the Sealpost portal: adds one on the account page and
// signs in with one on the sign-in page. Served as /static/passkey.js (the CSP
// allows no inline script). The server keeps each ceremony's state; this file
// only moves the options and the device's answer between it and the browser.
'use strict';

(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function fromB64url(text) {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  }

  function toB64url(buffer) {
    if (!buffer) return null;
    let bin = '';
    for (const byte of new Uint8Array(buffer)) bin += String.fromCharCode(byte);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    let answer = {};
    try { answer = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) throw new Error(answer.error || 'Something went wrong. Please try again.');
    return answer;
  }

  function showError(error) {
    const box = document.getElementById('passkey-error');
    if (!box) return;
    // The person cancelled, or the device said no: not worth a scary message.
    box.textContent = error && error.name === 'NotAllowedError'
      ? 'No passkey was used. You can try again, or use your password.'
      : (error && error.message) || 'Something went wrong. Please try again.';
    box.hidden = false;
  }

  async function addPasskey(area) {
    const csrf = area.dataset.csrf;
    const label = document.getElementById('passkey-label').value;
    const options = (await post('/account/passkeys/register/start', { csrf })).publicKey;
    options.challenge = fromB64url(options.challenge);
    options.user.id = fromB64url(options.user.id);
    (options.excludeCredentials || []).forEach((c) => { c.id = fromB64url(c.id); });
    // A discoverable credential, so signing in needs no email address.
    options.authenticatorSelection = Object.assign({}, options.authenticatorSelection, {
      residentKey: 'required', requireResidentKey: true,
    });
    const credential = await navigator.credentials.create({ publicKey: options });
    const done = await post('/account/passkeys/register/finish', {
      csrf,
      label,
      credential: {
        id: credential.id,
        rawId: toB64url(credential.rawId),
        type: credential.type,
        response: {
          attestationObject: toB64url(credential.response.attestationObject),
          clientDataJSON: toB64url(credential.response.clientDataJSON),
        },
        extensions: credential.getClientExtensionResults(),
      },
    });
    window.location.assign(done.redirect);
  }

  async function signIn(area) {
    const options = (await post('/signin/passkey/start', {})).publicKey;
    options.challenge = fromB64url(options.challenge);
    (options.allowCredentials || []).forEach((c) => { c.id = fromB64url(c.id); });
    const credential = await navigator.credentials.get({ publicKey: options });
    const done = await post('/signin/passkey/finish', {
      next: area.dataset.next || '',
      credential: {
        id: credential.id,
        rawId: toB64url(credential.rawId),
        type: credential.type,
        response: {
          authenticatorData: toB64url(credential.response.authenticatorData),
          clientDataJSON: toB64url(credential.response.clientDataJSON),
          signature: toB64url(credential.response.signature),
          userHandle: toB64url(credential.response.userHandle),
        },
        extensions: credential.getClientExtensionResults(),
      },
    });
    window.location.assign(done.redirect);
  }

  function wire(areaId, buttonId, action) {
    const area = document.getElementById(areaId);
    const button = document.getElementById(buttonId);
    if (!area || !button) return;
    area.hidden = false;
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await action(area);
      } catch (error) {
        showError(error);
      } finally {
        button.disabled = false;
      }
    });
  }

  wire('passkey-add', 'passkey-add-button', addPasskey);
  wire('passkey-signin', 'passkey-signin-button', signIn);
}());
