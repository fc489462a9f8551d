//! A PowerShell script that sets up Windows' built-in IKEv2 client: it imports the CA into the
//! machine's trusted roots (and a certificate client's PKCS#12 into the machine store), adds the
//! connection with `Add-VpnConnection` and sets its algorithms with
//! `Set-VpnConnectionIPsecConfiguration`, since Windows' defaults need MODP-1024.

use crate::suites::windows as names;
use crate::{Client, Credential, Gateway, base64};

/// A PowerShell single-quoted string: nothing in it is expanded, a quote is doubled.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The script for `client` of `gateway`; a certificate client's `NAME.p12` must lie beside it.
/// It runs in an elevated PowerShell: `powershell -ExecutionPolicy Bypass -File NAME.ps1`.
pub fn powershell(gateway: &Gateway, client: &Client) -> String {
    let name = quoted(&gateway.name);
    let mut s = String::new();
    s.push_str(&format!(
        "# oxswan: the IKEv2 VPN {name} for {client}, for Windows 10 and 11.\n\
         # Run it as administrator: powershell -ExecutionPolicy Bypass -File {file}.ps1\n\
         $ErrorActionPreference = 'Stop'\n\
         $Name = {name}\n\n\
         # The CA that issued the gateway's certificate, into the machine's trusted roots.\n\
         $CaFile = Join-Path $env:TEMP 'oxswan-ca.cer'\n\
         [System.IO.File]::WriteAllBytes($CaFile, [System.Convert]::FromBase64String('{ca}'))\n\
         Import-Certificate -FilePath $CaFile -CertStoreLocation Cert:\\LocalMachine\\Root | Out-Null\n\
         Remove-Item $CaFile\n\n",
        client = quoted(&client.name),
        file = client.name,
        ca = base64(&gateway.ca_der),
    ));
    let method = match &client.credential {
        Credential::Password { .. } => "Eap",
        Credential::Certificate { .. } => {
            s.push_str(&format!(
                "# The client's certificate and key, into the machine's personal store.\n\
                 $P12 = Join-Path $PSScriptRoot {p12}\n\
                 $P12Password = Read-Host -AsSecureString ('Password of ' + $P12)\n\
                 Import-PfxCertificate -FilePath $P12 -CertStoreLocation Cert:\\LocalMachine\\My -Password $P12Password | Out-Null\n\n",
                p12 = quoted(&format!("{}.p12", client.name)),
            ));
            "MachineCertificate"
        }
    };
    s.push_str(&format!(
        "# The connection; with EAP, Windows asks for the user name and password when it connects.\n\
         Add-VpnConnection -Name $Name -ServerAddress {name} -TunnelType Ikev2 -AuthenticationMethod {method} -EncryptionLevel Required{remember} -Force\n\
         Set-VpnConnectionIPsecConfiguration -ConnectionName $Name -EncryptionMethod {enc} -IntegrityCheckMethod {integ} -DHGroup {dh} -CipherTransformConstants {cipher} -AuthenticationTransformConstants {auth} -PfsGroup {pfs} -Force\n\
         Write-Host \"VPN $Name added: connect from the network settings{how}.\"\n",
        remember = if method == "Eap" { " -RememberCredential" } else { "" },
        enc = names::ENCRYPTION_METHOD,
        integ = names::INTEGRITY_CHECK_METHOD,
        dh = names::DH_GROUP,
        cipher = names::CIPHER_TRANSFORM,
        auth = names::AUTHENTICATION_TRANSFORM,
        pfs = names::PFS_GROUP,
        how = match &client.credential {
            Credential::Password { user, .. } => format!(" as {}", user.replace(['"', '`', '$'], "")),
            Credential::Certificate { .. } => String::new(),
        },
    ));
    s
}
