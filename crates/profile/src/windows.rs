//! A PowerShell script that sets up Windows' built-in IKEv2 client: it imports the CA into the
//! machine's trusted roots (and a certificate client's PKCS#12 into the machine store), adds the
//! connection with `Add-VpnConnection` and sets its algorithms with
//! `Set-VpnConnectionIPsecConfiguration`, since Windows' defaults need MODP-1024.

use crate::suites::windows as names;
use crate::{Client, Credential, Gateway, base64};

/// A PowerShell single-quoted string: nothing in it is expanded, and each of the characters
/// PowerShell takes for a single quote (the ASCII one and U+2018 to U+201B) is doubled.
fn quoted(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Text for a comment line: nothing that would end it.
fn comment(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The script for `client` of `gateway`; a certificate client's `NAME.p12` must lie beside it.
/// It runs in an elevated PowerShell: `powershell -ExecutionPolicy Bypass -File NAME.ps1`.
pub fn powershell(gateway: &Gateway, client: &Client) -> String {
    let name = quoted(&gateway.name);
    // A byte order mark: Windows PowerShell 5.1 reads a script without one in the ANSI code page.
    let mut s = String::from("\u{FEFF}");
    s.push_str(&format!(
        "# oxswan: the IKEv2 VPN {gw} for {client}, for Windows 10 and 11.\n\
         # Run it as administrator: powershell -ExecutionPolicy Bypass -File {file}.ps1\n\
         $ErrorActionPreference = 'Stop'\n\
         $Name = {name}\n\n\
         # The CA that issued the gateway's certificate, into the machine's trusted roots.\n\
         $CaFile = Join-Path $env:TEMP 'oxswan-ca.cer'\n\
         [System.IO.File]::WriteAllBytes($CaFile, [System.Convert]::FromBase64String('{ca}'))\n\
         Import-Certificate -FilePath $CaFile -CertStoreLocation Cert:\\LocalMachine\\Root | Out-Null\n\
         Remove-Item $CaFile\n\n",
        client = comment(&quoted(&client.name)),
        file = comment(&client.name),
        ca = base64(&gateway.ca_der),
        gw = comment(&name),
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
         # For every user of the machine; one of that name from an earlier run is replaced.\n\
         Remove-VpnConnection -Name $Name -AllUserConnection -Force -ErrorAction SilentlyContinue\n\
         Add-VpnConnection -Name $Name -ServerAddress {name} -TunnelType Ikev2 -AuthenticationMethod {method} -EncryptionLevel Required{remember} -AllUserConnection -Force\n\
         Set-VpnConnectionIPsecConfiguration -ConnectionName $Name -AllUserConnection -EncryptionMethod {enc} -IntegrityCheckMethod {integ} -DHGroup {dh} -CipherTransformConstants {cipher} -AuthenticationTransformConstants {auth} -PfsGroup {pfs} -Force\n\
         Write-Host ('VPN ' + $Name + ' added: connect from the network settings{how}.')\n",
        remember = if method == "Eap" { " -RememberCredential" } else { "" },
        enc = names::ENCRYPTION_METHOD,
        integ = names::INTEGRITY_CHECK_METHOD,
        dh = names::DH_GROUP,
        cipher = names::CIPHER_TRANSFORM,
        auth = names::AUTHENTICATION_TRANSFORM,
        pfs = names::PFS_GROUP,
        how = match &client.credential {
            Credential::Password { user, .. } => format!(" as ' + {} + '", quoted(user)),
            Credential::Certificate { .. } => String::new(),
        },
    ));
    s
}
