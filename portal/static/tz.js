// Tells the portal the browser's time zone, so it shows times in it when the
// reader's profile names none. The server checks the name against the tz
// database; without this script (or JavaScript) times are in the server's zone,
// with the zone's name beside each.
(function () {
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) return;
  var cookie = 'sealpost_tz=' + zone;
  if (document.cookie.split('; ').indexOf(cookie) !== -1) return;
  document.cookie = cookie + '; Path=/; Max-Age=31536000; SameSite=Lax; Secure';
})();
