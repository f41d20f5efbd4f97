#!/usr/bin/env bash
# Validates the Outlook add-in manifest offline with xmllint against Microsoft's
# published manifest schemas.
#   addin-manifest/validate.sh [MANIFEST]      (default: addin-manifest/manifest.xml)
# Schemas: $SEALPOST_OFFICE_SCHEMAS, else ../shared/schemas/office-addin beside
# the repository, else /work/shared/schemas/office-addin (a clone elsewhere).
#
# The schemas there predate event-based activation: they have no <Runtimes> and
# no LaunchEvent extension point. When the whole manifest does not validate, the
# two blocks marked "event-based activation" are taken out, the rest must
# validate, and the two blocks are checked by XPath for what Outlook needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
manifest=${1:-$here/manifest.xml}
schemas=${SEALPOST_OFFICE_SCHEMAS:-$here/../../shared/schemas/office-addin}
[ -n "${SEALPOST_OFFICE_SCHEMAS:-}" ] || [ -d "$schemas" ] || schemas=/work/shared/schemas/office-addin
schema=$schemas/OfficeAppManifestV1_1.xsd
if ! command -v xmllint >/dev/null; then
  echo "xmllint not found: install Debian's libxml2-utils (see .ci/run)" >&2
  exit 1
fi
if [ ! -f "$schema" ]; then
  echo "no manifest schema at $schema: set SEALPOST_OFFICE_SCHEMAS to the folder with OfficeAppManifestV1_1.xsd" >&2
  exit 1
fi

xmllint --noout --nonet "$manifest"
if xmllint --noout --nonet --schema "$schema" "$manifest" 2>/dev/null; then
  echo "$manifest validates against $schema"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed '/<!-- begin: event-based activation/,/<!-- end: event-based activation -->/d' "$manifest" >"$work/manifest.xml"
removed=$(( $(wc -l <"$manifest") - $(wc -l <"$work/manifest.xml") ))
xmllint --noout --nonet --schema "$schema" "$work/manifest.xml" 2>&1 | sed "s#$work/manifest.xml#$manifest (without event-based activation)#"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

check() {
  local what=$1 xpath=$2
  if [ "$(xmllint --nonet --xpath "$xpath" "$manifest" 2>/dev/null)" != "true" ]; then
    echo "$manifest: $what" >&2
    exit 1
  fi
}
e="*[local-name()='%s']"
# shellcheck disable=SC2059
{
  check "needs one LaunchEvent OnMessageSend -> onMessageSendHandler with a SendMode" \
    "count(//$(printf "$e" LaunchEvent)[@Type='OnMessageSend'][@FunctionName='onMessageSendHandler'][@SendMode='SoftBlock' or @SendMode='Block' or @SendMode='PromptUser']) = 1"
  check "the LaunchEvent extension point must name its runtime (SourceLocation = a Runtime resid)" \
    "//$(printf "$e" ExtensionPoint)[@*[local-name()='type']='LaunchEvent']/$(printf "$e" SourceLocation)/@resid = //$(printf "$e" Runtime)/@resid"
  check "the runtime needs a javascript Override for classic Outlook on Windows" \
    "count(//$(printf "$e" Runtime)/$(printf "$e" Override)[@type='javascript']) = 1"
  check "every runtime resid must be a bt:Url" \
    "count(//$(printf "$e" Runtime)/@resid[not(. = //$(printf "$e" Url)/@id)]) + count(//$(printf "$e" Override)[@type='javascript']/@resid[not(. = //$(printf "$e" Url)/@id)]) = 0"
  check "the marked blocks may hold only Runtimes and the LaunchEvent extension point ($removed lines)" \
    "count(//$(printf "$e" Runtimes)) = 1 and count(//$(printf "$e" ExtensionPoint)) = 2"
}
echo "note: $schema has no Runtimes/LaunchEvent (it predates event-based activation);"
echo "      the rest of $manifest validates, and its event-based activation blocks passed the XPath checks"
