//! EAP-MS-CHAPv2: MS-CHAPv2 (RFC 2759) in EAP as draft-kamath-pppext-eap-mschapv2 frames it, with
//! the MSK that strongSwan, Windows, iOS and Android derive from the MPPE master keys of
//! RFC 3079 §3.4.
//!
//! Type-Data, after the EAP Type octet 26 (draft-kamath §2):
//!
//! ```text
//! Challenge        (server): OpCode 1 | MS-CHAPv2-ID | MS-Length(2) | 16 | Challenge(16) | Name
//! Response         (peer):   OpCode 2 | MS-CHAPv2-ID | MS-Length(2) | 49 | Peer-Challenge(16)
//!                            | Reserved(8, zero) | NT-Response(24) | Flags(1, zero) | Name
//! Success-Request  (server): OpCode 3 | MS-CHAPv2-ID | MS-Length(2) | "S=<40 hex> M=<message>"
//! Success-Response (peer):   OpCode 3
//! Failure-Request  (server): OpCode 4 | MS-CHAPv2-ID | MS-Length(2) | "E=691 R=0 C=<32 hex> V=3 M=..."
//! Failure-Response (peer):   OpCode 4
//! ```
//!
//! MS-Length repeats the Type-Data length (EAP Length − 5). It is redundant with the EAP Length,
//! which delimits everything here, and it is not relied on: strongSwan never reads it and
//! hostapd ignores it by default because some servers send wrong values.
//!
//! As strongSwan's eap-mschapv2 plugin, the server looks the password up by the Name of the
//! Response (the user name the peer typed, domain included) and the peer is authenticated as
//! that name; the challenge hash uses the name without its `DOMAIN\` prefix (RFC 2759 §8.2).
//! Unlike that plugin, a wrong password is not retried (it could only be retried without the
//! delay strongSwan sleeps, which would help an online guesser): the server answers with a
//! Failure-Request that says not to retry (R=0), the same for an unknown user and a wrong
//! password so that user names cannot be probed, and ends with EAP-Failure on the peer's
//! Failure-Response.

use ::md4::Md4;
use ::sha1::Sha1;
use des::Des;
use des::cipher::{BlockCipherEncrypt, KeyInit};
use oxswan_crypto::Secret;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::method::{PeerContext, PeerMethod, PeerOutcome, ServerContext, ServerMethod, ServerOutcome};
use crate::{EapError, EapSecrets, MethodType, packet, printable};

use ::sha1::Digest as _;

/// Length of the authenticator and peer challenges (RFC 2759 §4).
pub const CHALLENGE_LEN: usize = 16;
/// Length of an NT password hash (RFC 2759 §8.3).
pub const PASSWORD_HASH_LEN: usize = 16;
/// Length of the NT-Response (RFC 2759 §8.1).
pub const NT_RESPONSE_LEN: usize = 24;
/// Length of the Authenticator Response before hex encoding (RFC 2759 §8.7).
pub const AUTHENTICATOR_RESPONSE_LEN: usize = 20;
/// Length of the MPPE keys taken for the MSK (RFC 3079 §3.4 with 128-bit keys).
pub const KEY_LEN: usize = 16;
/// Length of the MSK: two keys and 32 zero octets, as strongSwan builds it.
pub const MSK_LEN: usize = 64;

/// Value-Size of a Response: Peer-Challenge, Reserved, NT-Response, Flags.
const RESPONSE_VALUE_LEN: u8 = 49;

const OP_CHALLENGE: u8 = 1;
const OP_RESPONSE: u8 = 2;
const OP_SUCCESS: u8 = 3;
const OP_FAILURE: u8 = 4;

/// The name our Challenge carries (RFC 2759 §4: the authenticator's name).
const SERVER_NAME: &[u8] = b"oxswan";
/// The message of our Success-Request.
const SUCCESS_MESSAGE: &str = "Welcome to oxswan";
/// ERROR_AUTHENTICATION_FAILURE (RFC 2759 §6).
const ERROR_AUTHENTICATION_FAILURE: u32 = 691;
/// The longest server failure message kept for the log.
const MAX_MESSAGE_CHARS: usize = 256;

/// RFC 2759 §8.7 Magic1.
const AUTH_MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
/// RFC 2759 §8.7 Magic2.
const AUTH_MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";
/// RFC 3079 §3.4 GetMasterKey Magic1.
const MASTER_MAGIC: &[u8; 27] = b"This is the MPPE Master Key";
/// RFC 3079 §3.4 GetAsymmetricStartKey Magic2: the client's send key, the server's receive key.
const KEY_MAGIC2: &[u8; 84] = b"On the client side, this is the send key; on the server side, it is the receive key.";
/// RFC 3079 §3.4 GetAsymmetricStartKey Magic3: the client's receive key, the server's send key.
const KEY_MAGIC3: &[u8; 84] = b"On the client side, this is the receive key; on the server side, it is the send key.";
/// RFC 3079 §3.4 SHSpad1.
const SHS_PAD1: [u8; 40] = [0x00; 40];
/// RFC 3079 §3.4 SHSpad2.
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// The user name without its `DOMAIN\` prefix: RFC 2759 §8.2 hashes "only the user name (as
/// presented by the peer and excluding any prepended domain name)". Like strongSwan's
/// `extract_username`, everything after the first backslash.
pub fn user_name_part(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b'\\') {
        Some(i) => name.get(i.saturating_add(1)..).unwrap_or(&[]),
        None => name,
    }
}

/// Decodes one UTF-8 sequence the way strongSwan's `decode_utf8` does (lead byte decides the
/// length, continuation bytes are not validated), so that odd passwords hash as charon hashes
/// them; `None` at the end or on a sequence cut short, which ends the conversion.
fn decode_utf8(s: &[u8]) -> Option<(u32, usize)> {
    let b1 = u32::from(*s.first()?);
    if b1 & 0x80 == 0 {
        return Some((b1, 1));
    }
    let b2 = u32::from(*s.get(1)?);
    if b1 < 0xe0 {
        return Some((((b1 & 0x1f) << 6) | (b2 & 0x3f), 2));
    }
    let b3 = u32::from(*s.get(2)?);
    if b1 < 0xf0 {
        return Some((((b1 & 0x0f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f), 3));
    }
    let b4 = u32::from(*s.get(3)?);
    Some((((b1 & 0x07) << 18) | ((b2 & 0x3f) << 12) | ((b3 & 0x3f) << 6) | (b4 & 0x3f), 4))
}

/// The password as UTF-16LE (RFC 2759 §8.3 hashes the Unicode password), converted from UTF-8 as
/// strongSwan's `utf8_to_utf16le` does: code points that are not characters (surrogates, above
/// U+10FFFF, U+FDD0..U+FDEF, U+xxFFFE/U+xxFFFF) are dropped; the rest is standard UTF-16.
pub fn password_utf16le(password: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(password.len().saturating_mul(2)));
    let mut rest = password;
    while let Some((c, n)) = decode_utf8(rest) {
        rest = rest.get(n..).unwrap_or(&[]);
        if c >= 0xd800 && (c <= 0xdfff || c > 0x10ffff || (0xfdd0 <= c && (c <= 0xfdef || (c & 0xfffe) == 0xfffe))) {
            continue;
        }
        let mut units = [0u16; 2];
        let units: &[u16] = if c < 0x10000 {
            units[0] = (c & 0xffff) as u16;
            &units[..1]
        } else {
            units[0] = ((0xd7c0 + (c >> 10)) & 0xffff) as u16;
            units[1] = (0xdc00 | (c & 0x3ff)) as u16;
            &units
        };
        for u in units {
            out.extend_from_slice(&u.to_le_bytes());
        }
    }
    out
}

/// NtPasswordHash (RFC 2759 §8.3): MD4 of the UTF-16LE password.
pub fn nt_password_hash(password: &[u8]) -> Zeroizing<[u8; PASSWORD_HASH_LEN]> {
    let unicode = password_utf16le(password);
    Zeroizing::new(Md4::digest(unicode.as_slice()).into())
}

/// HashNtPasswordHash (RFC 2759 §8.4): MD4 of the password hash.
pub fn hash_nt_password_hash(password_hash: &[u8; PASSWORD_HASH_LEN]) -> Zeroizing<[u8; PASSWORD_HASH_LEN]> {
    Zeroizing::new(Md4::digest(password_hash).into())
}

/// ChallengeHash (RFC 2759 §8.2): the first 8 octets of SHA1(PeerChallenge | AuthenticatorChallenge
/// | UserName), with the user name already stripped of its domain ([`user_name_part`]).
pub fn challenge_hash(
    peer_challenge: &[u8; CHALLENGE_LEN],
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    user_name: &[u8],
) -> [u8; 8] {
    let mut h = Sha1::new();
    h.update(peer_challenge);
    h.update(authenticator_challenge);
    h.update(user_name);
    let digest: [u8; 20] = h.finalize().into();
    let mut out = [0u8; 8];
    for (o, d) in out.iter_mut().zip(digest) {
        *o = d;
    }
    out
}

/// Spreads 7 key octets over 8, seven bits each, with odd parity in the low bit (RFC 2759 §8.6 and
/// the example of §9.3; DES ignores the parity bits).
fn expand_des_key(key: &[u8; 7]) -> Zeroizing<[u8; 8]> {
    let mut wide = [0u8; 8];
    for (w, k) in wide.iter_mut().skip(1).zip(key) {
        *w = *k;
    }
    let bits = Zeroizing::new(u64::from_be_bytes(wide));
    let mut out = Zeroizing::new([0u8; 8]);
    for (i, o) in out.iter_mut().enumerate() {
        let shift = 49usize.saturating_sub(7usize.saturating_mul(i));
        let seven = ((*bits >> shift) & 0x7f) as u8;
        *o = seven << 1;
        if o.count_ones() % 2 == 0 {
            *o |= 1;
        }
    }
    out
}

/// DesEncrypt of one block (RFC 2759 §8.6) with a 7-octet key.
fn des_encrypt(block: &[u8; 8], key: &[u8; 7]) -> [u8; 8] {
    let expanded = expand_des_key(key);
    let cipher = Des::new(&(*expanded).into());
    let mut b = (*block).into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// ChallengeResponse (RFC 2759 §8.5): the password hash padded with zeros to 21 octets is three DES
/// keys, each encrypting the 8-octet challenge.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; PASSWORD_HASH_LEN]) -> [u8; NT_RESPONSE_LEN] {
    let mut padded = Zeroizing::new([0u8; 21]);
    for (z, h) in padded.iter_mut().zip(password_hash) {
        *z = *h;
    }
    let mut out = [0u8; NT_RESPONSE_LEN];
    for (dst, key) in out.chunks_exact_mut(8).zip(padded.chunks_exact(7)) {
        let mut k = Zeroizing::new([0u8; 7]);
        k.copy_from_slice(key);
        dst.copy_from_slice(&des_encrypt(challenge, &k));
    }
    out
}

/// GenerateNTResponse (RFC 2759 §8.1), from the password hash (so that stored NT hashes work too):
/// ChallengeResponse(ChallengeHash(...), PasswordHash).
pub fn generate_nt_response(
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    peer_challenge: &[u8; CHALLENGE_LEN],
    user_name: &[u8],
    password_hash: &[u8; PASSWORD_HASH_LEN],
) -> [u8; NT_RESPONSE_LEN] {
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    challenge_response(&challenge, password_hash)
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7), before the "S=" hex encoding:
/// SHA1(SHA1(PasswordHashHash | NT-Response | Magic1) | ChallengeHash | Magic2).
pub fn generate_authenticator_response(
    password_hash: &[u8; PASSWORD_HASH_LEN],
    nt_response: &[u8; NT_RESPONSE_LEN],
    peer_challenge: &[u8; CHALLENGE_LEN],
    authenticator_challenge: &[u8; CHALLENGE_LEN],
    user_name: &[u8],
) -> [u8; AUTHENTICATOR_RESPONSE_LEN] {
    let hash_hash = hash_nt_password_hash(password_hash);
    let mut h = Sha1::new();
    h.update(hash_hash.as_slice());
    h.update(nt_response);
    h.update(AUTH_MAGIC1);
    let digest = Zeroizing::new(<[u8; 20]>::from(h.finalize()));
    let challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name);
    let mut h = Sha1::new();
    h.update(digest.as_slice());
    h.update(challenge);
    h.update(AUTH_MAGIC2);
    h.finalize().into()
}

/// The Authenticator Response as the Success-Request carries it: "S=" and 40 upper-case hex digits
/// (RFC 2759 §8.7).
pub fn authenticator_response_string(response: &[u8; AUTHENTICATOR_RESPONSE_LEN]) -> String {
    format!("S={}", packet::hex_upper(response))
}

/// GetMasterKey (RFC 3079 §3.4): the first 16 octets of SHA1(PasswordHashHash | NT-Response |
/// Magic1).
pub fn get_master_key(
    password_hash_hash: &[u8; PASSWORD_HASH_LEN],
    nt_response: &[u8; NT_RESPONSE_LEN],
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut h = Sha1::new();
    h.update(password_hash_hash);
    h.update(nt_response);
    h.update(MASTER_MAGIC);
    truncate_key(h)
}

/// GetAsymmetricStartKey (RFC 3079 §3.4) with 16-octet keys: the first 16 octets of
/// SHA1(MasterKey | SHSpad1 | Magic | SHSpad2), Magic2 for the client's send and the server's
/// receive key, Magic3 for the other two.
pub fn get_asymmetric_start_key(
    master_key: &[u8; KEY_LEN],
    is_send: bool,
    is_server: bool,
) -> Zeroizing<[u8; KEY_LEN]> {
    let magic: &[u8] = if is_send == is_server { KEY_MAGIC3 } else { KEY_MAGIC2 };
    let mut h = Sha1::new();
    h.update(master_key);
    h.update(SHS_PAD1);
    h.update(magic);
    h.update(SHS_PAD2);
    truncate_key(h)
}

fn truncate_key(h: Sha1) -> Zeroizing<[u8; KEY_LEN]> {
    let digest = Zeroizing::new(<[u8; 20]>::from(h.finalize()));
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    for (k, d) in key.iter_mut().zip(digest.iter()) {
        *k = *d;
    }
    key
}

/// The EAP-MS-CHAPv2 MSK, the same on both sides: the server's MasterReceiveKey, its
/// MasterSendKey, then 32 zero octets (64 octets).
///
/// Neither RFC 3079 nor draft-kamath defines an MSK; this is strongSwan's `GenerateMSK` in
/// src/libcharon/plugins/eap_mschapv2/eap_mschapv2.c, which hashes Magic2 (the server's receive
/// key) into `master_receive_key` and Magic3 (its send key) into `master_send_key` and returns
/// `chunk_cat("cccc", master_receive_key(16), master_send_key(16), keypad(16 zeros), keypad)`, on
/// the server and on the peer alike. It is the MS-MPPE-Recv-Key | MS-MPPE-Send-Key order a RADIUS
/// server hands a gateway (RFC 2548 §2.4), which Windows, iOS and Android (strongSwan) clients
/// match; the IKE AUTH payload is keyed with it (RFC 7296 §2.16).
pub fn msk(password_hash: &[u8; PASSWORD_HASH_LEN], nt_response: &[u8; NT_RESPONSE_LEN]) -> Secret {
    let hash_hash = hash_nt_password_hash(password_hash);
    let master = get_master_key(&hash_hash, nt_response);
    let receive = get_asymmetric_start_key(&master, false, true);
    let send = get_asymmetric_start_key(&master, true, true);
    let mut out = Vec::with_capacity(MSK_LEN);
    out.extend_from_slice(receive.as_slice());
    out.extend_from_slice(send.as_slice());
    out.resize(MSK_LEN, 0);
    Secret::new(out)
}

/// The password hash of `identity`: a stored NT hash first, then the password (strongSwan's
/// `get_nt_hash` order).
fn lookup_password_hash(secrets: &dyn EapSecrets, identity: &[u8]) -> Option<Zeroizing<[u8; PASSWORD_HASH_LEN]>> {
    if let Some(hash) =
        secrets.eap_nt_hash(identity).and_then(|stored| <[u8; PASSWORD_HASH_LEN]>::try_from(stored.expose()).ok())
    {
        return Some(Zeroizing::new(hash));
    }
    secrets.eap_secret(identity).map(|password| nt_password_hash(password.expose()))
}

/// Type-Data of a packet with the long header: OpCode, MS-CHAPv2-ID, MS-Length, `body`.
fn long_packet(opcode: u8, ms_id: u8, body: &[&[u8]]) -> Result<Vec<u8>, EapError> {
    let len = body.iter().fold(4usize, |n, part| n.saturating_add(part.len()));
    let ms_length = u16::try_from(len).map_err(|_| EapError::Config("EAP packet longer than 65535 octets"))?;
    let mut td = Vec::with_capacity(len);
    td.push(opcode);
    td.push(ms_id);
    td.extend_from_slice(&ms_length.to_be_bytes());
    for part in body {
        td.extend_from_slice(part);
    }
    Ok(td)
}

/// Splits a long header off: (MS-CHAPv2-ID, the rest after MS-Length).
fn parse_long(type_data: &[u8]) -> Result<(u8, &[u8]), EapError> {
    let ([_opcode, ms_id, _len_hi, _len_lo], rest) =
        type_data.split_first_chunk::<4>().ok_or(EapError::Malformed("MS-CHAPv2 header truncated"))?;
    Ok((*ms_id, rest))
}

fn opcode_name(opcode: u8) -> String {
    match opcode {
        OP_CHALLENGE => "Challenge".into(),
        OP_RESPONSE => "Response".into(),
        OP_SUCCESS => "Success".into(),
        OP_FAILURE => "Failure".into(),
        7 => "Change-Password".into(),
        other => format!("OpCode {other}"),
    }
}

/// The value of the `key=` token of an MS-CHAPv2 message (RFC 2759 §5, §6: space separated; the
/// `M=` text, which may hold spaces, comes last).
fn message_field<'a>(message: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    message.split(|&b| b == b' ').find_map(|token| token.strip_prefix(key))
}

#[derive(Debug)]
enum ServerState {
    /// The Challenge is out.
    ExpectResponse,
    /// The Success-Request is out: the peer is authenticated as `name` when it acknowledges.
    ExpectSuccessResponse { name: Vec<u8>, msk: Secret },
    /// The Failure-Request is out: the conversation ends with `error` on the Failure-Response.
    ExpectFailureResponse { name: Vec<u8>, error: EapError },
    /// Finished.
    Done,
}

/// The server side of EAP-MS-CHAPv2.
#[derive(Debug)]
pub(crate) struct MsChapV2Server {
    /// MS-CHAPv2-ID of our packets: the EAP Identifier of the Challenge, as strongSwan sets it.
    ms_id: u8,
    /// Our authenticator challenge.
    challenge: [u8; CHALLENGE_LEN],
    state: ServerState,
}

impl MsChapV2Server {
    pub(crate) fn new() -> Self {
        Self { ms_id: 0, challenge: [0; CHALLENGE_LEN], state: ServerState::ExpectResponse }
    }

    /// A Response (opcode 2): checks the NT-Response and answers with a Success-Request or a
    /// Failure-Request.
    fn response(&mut self, type_data: &[u8], ctx: &ServerContext<'_>) -> ServerOutcome {
        let (ms_id, rest) = match parse_long(type_data) {
            Ok(v) => v,
            Err(e) => return ServerOutcome::Discard(e),
        };
        if ms_id != self.ms_id {
            // RFC 2759 §4: the Response's Identifier is the Challenge's.
            return ServerOutcome::Discard(EapError::Malformed(
                "MS-CHAPv2-ID of the Response differs from the Challenge",
            ));
        }
        let Some((&value_size, rest)) = rest.split_first() else {
            return ServerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Response truncated"));
        };
        if value_size != RESPONSE_VALUE_LEN {
            return ServerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Response Value-Size is not 49"));
        }
        let Some((peer_challenge, rest)) = rest.split_first_chunk::<CHALLENGE_LEN>() else {
            return ServerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Response truncated"));
        };
        // Reserved (8) and Flags (1) must be sent as zero (RFC 2759 §4) and carry nothing.
        let Some((_reserved, rest)) = rest.split_first_chunk::<8>() else {
            return ServerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Response truncated"));
        };
        let Some((nt_response, rest)) = rest.split_first_chunk::<NT_RESPONSE_LEN>() else {
            return ServerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Response truncated"));
        };
        let Some((_flags, name)) = rest.split_first() else {
            return ServerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Response truncated"));
        };
        let name = if name.is_empty() { ctx.identity.to_vec() } else { name.to_vec() };
        let user = user_name_part(&name);

        let (error, matched) = match lookup_password_hash(ctx.secrets, &name) {
            Some(hash) => {
                let expected = Zeroizing::new(generate_nt_response(&self.challenge, peer_challenge, user, &hash));
                if bool::from(expected.as_slice().ct_eq(nt_response)) {
                    let auth =
                        generate_authenticator_response(&hash, nt_response, peer_challenge, &self.challenge, user);
                    (None, Some((auth, msk(&hash, nt_response))))
                } else {
                    (Some(EapError::WrongSecret(printable(&name))), None)
                }
            }
            None => (Some(EapError::UnknownUser(printable(&name))), None),
        };
        if let Some((auth, msk)) = matched {
            let message = format!("{} M={SUCCESS_MESSAGE}", authenticator_response_string(&auth));
            return match long_packet(OP_SUCCESS, self.ms_id, &[message.as_bytes()]) {
                Ok(td) => {
                    self.state = ServerState::ExpectSuccessResponse { name, msk };
                    ServerOutcome::Request(td)
                }
                Err(error) => ServerOutcome::Failure { identity: Some(name), error },
            };
        }
        let error = error.unwrap_or(EapError::Unexpected("MS-CHAPv2 verification".into()));
        // RFC 2759 §6: C= is a new challenge for a retry; R=0 says there will be none.
        let mut fresh = [0u8; CHALLENGE_LEN];
        if let Err(e) = packet::fill(ctx.random, &mut fresh) {
            return ServerOutcome::Failure { identity: Some(name), error: e };
        }
        let message =
            format!("E={ERROR_AUTHENTICATION_FAILURE} R=0 C={} V=3 M=Authentication failed", packet::hex_upper(&fresh));
        match long_packet(OP_FAILURE, self.ms_id, &[message.as_bytes()]) {
            Ok(td) => {
                self.state = ServerState::ExpectFailureResponse { name, error };
                ServerOutcome::Request(td)
            }
            Err(e) => ServerOutcome::Failure { identity: Some(name), error: e },
        }
    }
}

impl ServerMethod for MsChapV2Server {
    fn method_type(&self) -> MethodType {
        MethodType::MsChapV2
    }

    fn pending_error(&self) -> Option<&EapError> {
        match &self.state {
            ServerState::ExpectFailureResponse { error, .. } => Some(error),
            _ => None,
        }
    }

    fn initiate(&mut self, ctx: &ServerContext<'_>) -> Result<Vec<u8>, EapError> {
        packet::fill(ctx.random, &mut self.challenge)?;
        self.ms_id = ctx.identifier;
        self.state = ServerState::ExpectResponse;
        long_packet(OP_CHALLENGE, self.ms_id, &[&[CHALLENGE_LEN as u8], &self.challenge, SERVER_NAME])
    }

    fn process(&mut self, type_data: &[u8], ctx: &ServerContext<'_>) -> ServerOutcome {
        let Some(&opcode) = type_data.first() else {
            return ServerOutcome::Discard(EapError::Malformed("MS-CHAPv2 without OpCode"));
        };
        match (&self.state, opcode) {
            (ServerState::ExpectResponse, OP_RESPONSE) => self.response(type_data, ctx),
            (ServerState::ExpectSuccessResponse { .. }, OP_SUCCESS) => {
                match core::mem::replace(&mut self.state, ServerState::Done) {
                    ServerState::ExpectSuccessResponse { name, msk } => {
                        ServerOutcome::Success { identity: name, msk: Some(msk) }
                    }
                    _ => ServerOutcome::Discard(EapError::Unexpected("MS-CHAPv2 state".into())),
                }
            }
            (ServerState::ExpectFailureResponse { .. }, OP_FAILURE) => {
                match core::mem::replace(&mut self.state, ServerState::Done) {
                    ServerState::ExpectFailureResponse { name, error } => {
                        ServerOutcome::Failure { identity: Some(name), error }
                    }
                    _ => ServerOutcome::Discard(EapError::Unexpected("MS-CHAPv2 state".into())),
                }
            }
            // The peer may abort with a Failure-Response at any time (strongSwan's
            // process_server does the same): e.g. when our Authenticator Response did not verify.
            (ServerState::ExpectResponse | ServerState::ExpectSuccessResponse { .. }, OP_FAILURE) => {
                let name = match core::mem::replace(&mut self.state, ServerState::Done) {
                    ServerState::ExpectSuccessResponse { name, .. } => name,
                    _ => ctx.identity.to_vec(),
                };
                let error = EapError::PeerAborted(printable(&name));
                ServerOutcome::Failure { identity: Some(name), error }
            }
            (state, opcode) => ServerOutcome::Discard(EapError::Unexpected(format!(
                "MS-CHAPv2 {} in state {}",
                opcode_name(opcode),
                match state {
                    ServerState::ExpectResponse => "expecting a Response",
                    ServerState::ExpectSuccessResponse { .. } => "expecting a Success-Response",
                    ServerState::ExpectFailureResponse { .. } => "expecting a Failure-Response",
                    ServerState::Done => "done",
                }
            ))),
        }
    }
}

#[derive(Debug)]
enum PeerState {
    /// Nothing received yet.
    ExpectChallenge,
    /// Our Response is out; the server must prove the password with `auth_response`.
    ExpectSuccess { auth_response: [u8; AUTHENTICATOR_RESPONSE_LEN], msk: Secret },
    /// The server proved it; EAP-Success may come.
    Succeeded { msk: Secret },
    /// The server refused us, or did not prove itself.
    Failed,
}

/// The peer side of EAP-MS-CHAPv2.
#[derive(Debug)]
pub(crate) struct MsChapV2Peer {
    state: PeerState,
    /// The message of the server's Failure-Request, printable.
    failure_message: Option<String>,
}

impl MsChapV2Peer {
    pub(crate) fn new() -> Self {
        Self { state: PeerState::ExpectChallenge, failure_message: None }
    }

    /// A Challenge (opcode 1): computes our Response.
    fn challenge(&mut self, type_data: &[u8], ctx: &PeerContext<'_>) -> PeerOutcome {
        let (ms_id, rest) = match parse_long(type_data) {
            Ok(v) => v,
            Err(e) => return PeerOutcome::Discard(e),
        };
        let Some((&value_size, rest)) = rest.split_first() else {
            return PeerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Challenge truncated"));
        };
        if usize::from(value_size) != CHALLENGE_LEN {
            return PeerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Challenge Value-Size is not 16"));
        }
        // The rest is the server's name (RFC 2759 §4), for display only.
        let Some((auth_challenge, _name)) = rest.split_first_chunk::<CHALLENGE_LEN>() else {
            return PeerOutcome::Discard(EapError::Malformed("MS-CHAPv2 Challenge truncated"));
        };
        let Some(hash) = lookup_password_hash(ctx.secrets, ctx.identity) else {
            return PeerOutcome::Failure(EapError::UnknownUser(printable(ctx.identity)));
        };
        let mut peer_challenge = [0u8; CHALLENGE_LEN];
        if let Err(e) = packet::fill(ctx.random, &mut peer_challenge) {
            return PeerOutcome::Failure(e);
        }
        // The whole identity goes into Name; the hash takes the user part (as strongSwan does).
        let user = user_name_part(ctx.identity);
        let nt_response = generate_nt_response(auth_challenge, &peer_challenge, user, &hash);
        let auth_response = generate_authenticator_response(&hash, &nt_response, &peer_challenge, auth_challenge, user);
        let msk = msk(&hash, &nt_response);
        let td = long_packet(
            OP_RESPONSE,
            ms_id,
            &[&[RESPONSE_VALUE_LEN], &peer_challenge, &[0u8; 8], &nt_response, &[0u8], ctx.identity],
        );
        match td {
            Ok(td) => {
                self.state = PeerState::ExpectSuccess { auth_response, msk };
                PeerOutcome::Respond(td)
            }
            Err(e) => PeerOutcome::Failure(e),
        }
    }
}

impl PeerMethod for MsChapV2Peer {
    fn method_type(&self) -> MethodType {
        MethodType::MsChapV2
    }

    fn process(&mut self, type_data: &[u8], ctx: &PeerContext<'_>) -> PeerOutcome {
        let Some(&opcode) = type_data.first() else {
            return PeerOutcome::Discard(EapError::Malformed("MS-CHAPv2 without OpCode"));
        };
        match (&self.state, opcode) {
            (PeerState::ExpectChallenge, OP_CHALLENGE) => self.challenge(type_data, ctx),
            (PeerState::ExpectSuccess { auth_response, .. }, OP_SUCCESS) => {
                let message = match parse_long(type_data) {
                    Ok((_ms_id, message)) => message,
                    Err(e) => return PeerOutcome::Discard(e),
                };
                // RFC 2759 §5: "S=<auth_string> M=<message>"; the auth string is 40 hex digits,
                // of either case as strongSwan accepts.
                let proved = message_field(message, b"S=")
                    .and_then(packet::hex_decode::<AUTHENTICATOR_RESPONSE_LEN>)
                    .is_some_and(|got| bool::from(got.ct_eq(auth_response)));
                if !proved {
                    self.state = PeerState::Failed;
                    return PeerOutcome::Failure(EapError::ServerNotAuthenticated);
                }
                match core::mem::replace(&mut self.state, PeerState::Failed) {
                    PeerState::ExpectSuccess { msk, .. } => {
                        self.state = PeerState::Succeeded { msk };
                        // The Success-Response is the OpCode alone (draft-kamath §2.4).
                        PeerOutcome::Respond(vec![OP_SUCCESS])
                    }
                    _ => PeerOutcome::Discard(EapError::Unexpected("MS-CHAPv2 state".into())),
                }
            }
            (PeerState::ExpectSuccess { .. }, OP_FAILURE) => {
                let message = match parse_long(type_data) {
                    Ok((_ms_id, message)) => message,
                    Err(e) => return PeerOutcome::Discard(e),
                };
                // RFC 2759 §6: "E=eeeeeeeeee R=r C=cccc... V=vvvvvvvvvv M=<msg>". We do not retry
                // (there is no user to ask for another password) and we do not change the password:
                // we answer with the Failure-Response (draft-kamath §2.6) and wait for EAP-Failure.
                self.failure_message = Some(printable(message).chars().take(MAX_MESSAGE_CHARS).collect());
                self.state = PeerState::Failed;
                PeerOutcome::Respond(vec![OP_FAILURE])
            }
            (state, opcode) => PeerOutcome::Discard(EapError::Unexpected(format!(
                "MS-CHAPv2 {} in state {}",
                opcode_name(opcode),
                match state {
                    PeerState::ExpectChallenge => "expecting a Challenge",
                    PeerState::ExpectSuccess { .. } => "expecting a Success- or Failure-Request",
                    PeerState::Succeeded { .. } => "expecting EAP-Success",
                    PeerState::Failed => "failed",
                }
            ))),
        }
    }

    fn success(&self) -> Result<Option<Secret>, EapError> {
        match &self.state {
            PeerState::Succeeded { msk } => Ok(Some(msk.clone())),
            PeerState::ExpectChallenge | PeerState::ExpectSuccess { .. } => {
                Err(EapError::Unexpected("EAP-Success before the MS-CHAPv2 server proved it knows the password".into()))
            }
            PeerState::Failed => Err(EapError::Unexpected("EAP-Success after MS-CHAPv2 failed".into())),
        }
    }

    fn failure_message(&self) -> Option<&str> {
        self.failure_message.as_deref()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s.replace(' ', "")).unwrap().try_into().unwrap()
    }

    const AUTH_CHALLENGE: &str = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28";
    const PEER_CHALLENGE: &str = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E";
    const NT_RESPONSE: &str = "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";

    /// RFC 2759 §9.2, "Hash Example": UserName "User", Password "clientPass".
    #[test]
    fn rfc2759_hash_example() {
        assert_eq!(
            password_utf16le(b"clientPass").as_slice(),
            &h::<20>("63 00 6C 00 69 00 65 00 6E 00 74 00 50 00 61 00 73 00 73 00")[..]
        );
        let hash = nt_password_hash(b"clientPass");
        assert_eq!(*hash, h::<16>("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE"));
        assert_eq!(*hash_nt_password_hash(&hash), h::<16>("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F"));
        let (auth, peer) = (h::<16>(AUTH_CHALLENGE), h::<16>(PEER_CHALLENGE));
        assert_eq!(challenge_hash(&peer, &auth, b"User"), h::<8>("D0 2E 43 86 BC E9 12 26"));
        let nt = generate_nt_response(&auth, &peer, b"User", &hash);
        assert_eq!(nt, h::<24>(NT_RESPONSE));
        let ar = generate_authenticator_response(&hash, &nt, &peer, &auth, b"User");
        assert_eq!(authenticator_response_string(&ar), "S=407A5589115FD0D6209F510FE9C04566932CDA56");
        // The domain is not hashed (RFC 2759 §8.2).
        assert_eq!(generate_nt_response(&auth, &peer, user_name_part(b"CORP\\User"), &hash), nt);
    }

    /// RFC 2759 §9.3, "Example of DES Key Generation" (password "MyPw").
    #[test]
    fn rfc2759_des_key_example() {
        let hash = nt_password_hash(b"MyPw");
        assert_eq!(*hash, h::<16>("FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC"));
        assert_eq!(*expand_des_key(&h::<7>("FC 15 6A F7 ED CD 6C")), h::<8>("FD 0B 5B 5E 7F 6E 34 D9"));
        assert_eq!(*expand_des_key(&h::<7>("0E DD E3 33 7D 42 7F")), h::<8>("0E 6E 79 67 37 EA 08 FE"));
    }

    /// GetNewKeyFromSHA (RFC 3079 §3.3), only to check the session key of the RFC 3079 example.
    fn get_new_key_from_sha(start_key: &[u8; 16], session_key: &[u8; 16]) -> [u8; 16] {
        let mut h = Sha1::new();
        h.update(start_key);
        h.update(SHS_PAD1);
        h.update(session_key);
        h.update(SHS_PAD2);
        *truncate_key(h)
    }

    /// RFC 3079 §3.5.3, "Sample Key Derivations" with 128-bit keys: the same inputs as RFC 2759
    /// §9.2; its SendStartKey128 is the server's send key (Magic3), the client's receive key.
    #[test]
    fn rfc3079_128_bit_example() {
        let hash = nt_password_hash(b"clientPass");
        let hash_hash = hash_nt_password_hash(&hash);
        let nt = h::<24>(NT_RESPONSE);
        let master = get_master_key(&hash_hash, &nt);
        assert_eq!(*master, h::<16>("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31"));
        let send = get_asymmetric_start_key(&master, true, true);
        assert_eq!(*send, h::<16>("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB"));
        assert_eq!(*get_asymmetric_start_key(&master, false, false), *send);
        assert_eq!(get_new_key_from_sha(&send, &send), h::<16>("40 5C B2 24 7A 79 56 E6 E2 11 00 7A E2 7B 22 D4"));
        // The client's send key is the server's receive key.
        assert_eq!(*get_asymmetric_start_key(&master, true, false), *get_asymmetric_start_key(&master, false, true));
        assert_ne!(*get_asymmetric_start_key(&master, false, true), *send);

        // MSK = server receive key | server send key | 32 zeros (strongSwan's GenerateMSK).
        let key = msk(&hash, &nt);
        let k = key.expose();
        assert_eq!(k.len(), MSK_LEN);
        assert_eq!(&k[..16], &get_asymmetric_start_key(&master, false, true)[..]);
        assert_eq!(&k[16..32], &send[..]);
        assert_eq!(&k[32..], &[0u8; 32][..]);
    }

    #[test]
    fn utf16_conversion_matches_strongswan() {
        // "é" (2 octets), "€" (3), U+1F600 (4: a surrogate pair), a non-character U+FFFE
        // (dropped), a truncated sequence at the end (ends the conversion).
        let input = "é€😀\u{fffe}x".as_bytes().to_vec();
        let mut cut = input.clone();
        cut.push(0xe2);
        cut.push(0x82);
        let out = password_utf16le(&cut);
        let expected: Vec<u8> = "é€😀x".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(out.as_slice(), &expected[..]);
        // Invalid UTF-8 never panics.
        for bytes in [&[0xffu8, 0xff, 0xff, 0xff][..], &[0x80], &[0xf8, 0x80, 0x80, 0x80, 0x80], &[0xc0]] {
            let _ = password_utf16le(bytes);
        }
    }

    #[test]
    fn user_name_part_strips_domain() {
        assert_eq!(user_name_part(b"CORP\\alice"), b"alice");
        assert_eq!(user_name_part(b"alice@corp"), b"alice@corp");
        assert_eq!(user_name_part(b"CORP\\"), b"");
        assert_eq!(user_name_part(b"A\\B\\c"), b"B\\c");
    }

    #[test]
    fn message_fields() {
        let m = b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=Hello there";
        assert_eq!(message_field(m, b"S="), Some(&b"407A5589115FD0D6209F510FE9C04566932CDA56"[..]));
        assert_eq!(message_field(m, b"M="), Some(&b"Hello"[..]));
        assert_eq!(message_field(m, b"E="), None);
    }
}
