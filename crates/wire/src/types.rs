//! Wire enumerations (IANA "Internet Key Exchange Version 2 (IKEv2) Parameters").
//!
//! Each is a newtype over its wire integer: values without a name here still parse, print as
//! `Type(value)` and emit unchanged.

wire_enum! {
    /// Exchange Type (RFC 7296 §3.1).
    pub struct ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
        /// RFC 5723.
        IKE_SESSION_RESUME = 38,
        /// RFC 9242.
        IKE_INTERMEDIATE = 43,
        /// RFC 9370.
        IKE_FOLLOWUP_KE = 44,
    }
}

wire_enum! {
    /// Next Payload / payload type (RFC 7296 §3.2).
    pub struct PayloadType(u8) {
        /// No Next Payload.
        NONE = 0,
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR_ID = 43,
        TSI = 44,
        TSR = 45,
        /// Encrypted and Authenticated (RFC 7296 §3.14).
        SK = 46,
        CP = 47,
        EAP = 48,
        /// Generic Secure Password Methods (RFC 6467).
        GSPM = 49,
        /// Encrypted and Authenticated Fragment (RFC 7383 §2.5).
        SKF = 53,
    }
}

wire_enum! {
    /// Protocol ID of a proposal, notify or delete (RFC 7296 §3.3.1).
    pub struct ProtocolId(u8) {
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

wire_enum! {
    /// Transform Type (RFC 7296 §3.3.2; types 6–12 from RFC 9370).
    pub struct TransformType(u8) {
        /// Encryption Algorithm.
        ENCR = 1,
        /// Pseudorandom Function.
        PRF = 2,
        /// Integrity Algorithm.
        INTEG = 3,
        /// Key Exchange Method (formerly Diffie-Hellman Group; RFC 9370 §2.2).
        KE = 4,
        /// Extended Sequence Numbers (formerly named Sequence Numbers in RFC 9827).
        ESN = 5,
        ADDKE1 = 6,
        ADDKE2 = 7,
        ADDKE3 = 8,
        ADDKE4 = 9,
        ADDKE5 = 10,
        ADDKE6 = 11,
        ADDKE7 = 12,
    }
}

impl TransformType {
    /// For an Additional Key Exchange type (RFC 9370), its number 1..=7.
    pub fn additional_ke_index(self) -> Option<u8> {
        (6..=12).contains(&self.0).then(|| self.0.saturating_sub(5))
    }

    /// The Additional Key Exchange type number `n` (1..=7).
    pub fn additional_ke(n: u8) -> Option<Self> {
        (1..=7).contains(&n).then(|| Self(n.saturating_add(5)))
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 1, Encryption Algorithm.
    pub struct EncrId(u16) {
        DES_IV64 = 1,
        DES = 2,
        DES3 = 3,
        NULL = 11,
        AES_CBC = 12,
        AES_CTR = 13,
        AES_CCM_8 = 14,
        AES_CCM_12 = 15,
        AES_CCM_16 = 16,
        /// AES-GCM with an 8-octet ICV (RFC 4106, RFC 5282).
        AES_GCM_8 = 18,
        /// AES-GCM with a 12-octet ICV.
        AES_GCM_12 = 19,
        /// AES-GCM with a 16-octet ICV.
        AES_GCM_16 = 20,
        NULL_AUTH_AES_GMAC = 21,
        CAMELLIA_CBC = 23,
        /// RFC 7634.
        CHACHA20_POLY1305 = 28,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 2, Pseudorandom Function.
    pub struct PrfId(u16) {
        HMAC_MD5 = 1,
        HMAC_SHA1 = 2,
        HMAC_TIGER = 3,
        AES128_XCBC = 4,
        HMAC_SHA2_256 = 5,
        HMAC_SHA2_384 = 6,
        HMAC_SHA2_512 = 7,
        AES128_CMAC = 8,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 3, Integrity Algorithm.
    pub struct IntegId(u16) {
        NONE = 0,
        HMAC_MD5_96 = 1,
        HMAC_SHA1_96 = 2,
        DES_MAC = 3,
        KPDK_MD5 = 4,
        AES_XCBC_96 = 5,
        HMAC_MD5_128 = 6,
        HMAC_SHA1_160 = 7,
        AES_CMAC_96 = 8,
        AES_128_GMAC = 9,
        AES_192_GMAC = 10,
        AES_256_GMAC = 11,
        HMAC_SHA2_256_128 = 12,
        HMAC_SHA2_384_192 = 13,
        HMAC_SHA2_512_256 = 14,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 4, Key Exchange Method (and 6–12, RFC 9370).
    pub struct KeId(u16) {
        NONE = 0,
        MODP768 = 1,
        MODP1024 = 2,
        MODP1536 = 5,
        MODP2048 = 14,
        MODP3072 = 15,
        MODP4096 = 16,
        MODP6144 = 17,
        MODP8192 = 18,
        ECP256 = 19,
        ECP384 = 20,
        ECP521 = 21,
        MODP1024_160 = 22,
        MODP2048_224 = 23,
        MODP2048_256 = 24,
        ECP192 = 25,
        ECP224 = 26,
        BRAINPOOL_P224R1 = 27,
        BRAINPOOL_P256R1 = 28,
        BRAINPOOL_P384R1 = 29,
        BRAINPOOL_P512R1 = 30,
        CURVE25519 = 31,
        CURVE448 = 32,
        GOST3410_2012_256 = 33,
        GOST3410_2012_512 = 34,
        /// FIPS 203 (draft-ietf-ipsecme-ikev2-mlkem).
        ML_KEM_512 = 35,
        ML_KEM_768 = 36,
        ML_KEM_1024 = 37,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 5, Extended Sequence Numbers.
    pub struct EsnId(u16) {
        NO_ESN = 0,
        ESN = 1,
    }
}

wire_enum! {
    /// Transform attribute type (RFC 7296 §3.3.5).
    pub struct AttributeType(u16) {
        KEY_LENGTH = 14,
    }
}

wire_enum! {
    /// ID Type of IDi/IDr (RFC 7296 §3.5; ID_NULL from RFC 7619).
    pub struct IdType(u8) {
        ID_IPV4_ADDR = 1,
        ID_FQDN = 2,
        ID_RFC822_ADDR = 3,
        ID_IPV6_ADDR = 5,
        ID_DER_ASN1_DN = 9,
        ID_DER_ASN1_GN = 10,
        ID_KEY_ID = 11,
        ID_FC_NAME = 12,
        ID_NULL = 13,
    }
}

wire_enum! {
    /// Certificate Encoding of CERT and CERTREQ (RFC 7296 §3.6; 14 from RFC 4806, 15 from RFC 7670).
    pub struct CertEncoding(u8) {
        PKCS7_X509 = 1,
        PGP = 2,
        DNS_SIGNED_KEY = 3,
        X509_SIGNATURE = 4,
        KERBEROS = 6,
        CRL = 7,
        ARL = 8,
        SPKI = 9,
        X509_ATTRIBUTE = 10,
        RAW_RSA_KEY = 11,
        HASH_URL_X509_CERT = 12,
        HASH_URL_X509_BUNDLE = 13,
        OCSP_CONTENT = 14,
        RAW_PUBLIC_KEY = 15,
    }
}

wire_enum! {
    /// Auth Method of the AUTH payload (RFC 7296 §3.8; 9–11 RFC 4754, 12 RFC 6467, 13 RFC 7619, 14 RFC 7427).
    pub struct AuthMethod(u8) {
        RSA_DIGITAL_SIGNATURE = 1,
        SHARED_KEY_MIC = 2,
        DSS_DIGITAL_SIGNATURE = 3,
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        GENERIC_SECURE_PASSWORD = 12,
        NULL_AUTH = 13,
        DIGITAL_SIGNATURE = 14,
    }
}

wire_enum! {
    /// TS Type of a traffic selector (RFC 7296 §3.13.1).
    pub struct TsType(u8) {
        TS_IPV4_ADDR_RANGE = 7,
        TS_IPV6_ADDR_RANGE = 8,
        TS_FC_ADDR_RANGE = 9,
    }
}

wire_enum! {
    /// CFG Type of the configuration payload (RFC 7296 §3.15).
    pub struct CfgType(u8) {
        CFG_REQUEST = 1,
        CFG_REPLY = 2,
        CFG_SET = 3,
        CFG_ACK = 4,
    }
}

wire_enum! {
    /// Configuration attribute type (RFC 7296 §3.15.1, 15 bits; later RFCs as noted).
    pub struct CfgAttributeType(u16) {
        INTERNAL_IP4_ADDRESS = 1,
        INTERNAL_IP4_NETMASK = 2,
        INTERNAL_IP4_DNS = 3,
        INTERNAL_IP4_NBNS = 4,
        INTERNAL_IP4_DHCP = 6,
        APPLICATION_VERSION = 7,
        INTERNAL_IP6_ADDRESS = 8,
        INTERNAL_IP6_DNS = 10,
        INTERNAL_IP6_DHCP = 12,
        INTERNAL_IP4_SUBNET = 13,
        SUPPORTED_ATTRIBUTES = 14,
        INTERNAL_IP6_SUBNET = 15,
        /// RFC 5026.
        MIP6_HOME_PREFIX = 16,
        /// RFC 5739.
        INTERNAL_IP6_LINK = 17,
        /// RFC 5739.
        INTERNAL_IP6_PREFIX = 18,
        /// RFC 7651.
        P_CSCF_IP4_ADDRESS = 20,
        /// RFC 7651.
        P_CSCF_IP6_ADDRESS = 21,
        /// RFC 8598.
        INTERNAL_DNS_DOMAIN = 25,
        /// RFC 8598.
        INTERNAL_DNSSEC_TA = 26,
    }
}

wire_enum! {
    /// Notify Message Type (RFC 7296 §3.10.1 and later RFCs). Types below 16384 are errors.
    pub struct NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        /// RFC 4555.
        UNACCEPTABLE_ADDRESSES = 40,
        /// RFC 4555.
        UNEXPECTED_NAT_DETECTED = 41,
        /// RFC 5026.
        USE_ASSIGNED_HOA = 42,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        /// RFC 6407.
        INVALID_GROUP_ID = 45,
        /// RFC 6407.
        AUTHORIZATION_FAILED = 46,
        /// RFC 9370.
        STATE_NOT_FOUND = 47,
        /// RFC 9611: the responder takes no more per-resource CHILD SAs with these selectors.
        TS_MAX_QUEUE = 48,
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// RFC 4555.
        MOBIKE_SUPPORTED = 16396,
        /// RFC 4555.
        ADDITIONAL_IP4_ADDRESS = 16397,
        /// RFC 4555.
        ADDITIONAL_IP6_ADDRESS = 16398,
        /// RFC 4555.
        NO_ADDITIONAL_ADDRESSES = 16399,
        /// RFC 4555.
        UPDATE_SA_ADDRESSES = 16400,
        /// RFC 4555.
        COOKIE2 = 16401,
        /// RFC 4555.
        NO_NATS_ALLOWED = 16402,
        /// RFC 4478.
        AUTH_LIFETIME = 16403,
        /// RFC 4739.
        MULTIPLE_AUTH_SUPPORTED = 16404,
        /// RFC 4739.
        ANOTHER_AUTH_FOLLOWS = 16405,
        /// RFC 5685.
        REDIRECT_SUPPORTED = 16406,
        /// RFC 5685.
        REDIRECT = 16407,
        /// RFC 5685.
        REDIRECTED_FROM = 16408,
        /// RFC 5723.
        TICKET_LT_OPAQUE = 16409,
        /// RFC 5723.
        TICKET_REQUEST = 16410,
        /// RFC 5723.
        TICKET_ACK = 16411,
        /// RFC 5723.
        TICKET_NACK = 16412,
        /// RFC 5723.
        TICKET_OPAQUE = 16413,
        /// RFC 5739.
        LINK_ID = 16414,
        /// RFC 5840.
        USE_WESP_MODE = 16415,
        /// RFC 5857.
        ROHC_SUPPORTED = 16416,
        /// RFC 5998.
        EAP_ONLY_AUTHENTICATION = 16417,
        /// RFC 6023.
        CHILDLESS_IKEV2_SUPPORTED = 16418,
        /// RFC 6290.
        QUICK_CRASH_DETECTION = 16419,
        /// RFC 6311.
        IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420,
        /// RFC 6311.
        IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421,
        /// RFC 6311.
        IKEV2_MESSAGE_ID_SYNC = 16422,
        /// RFC 6311.
        IPSEC_REPLAY_COUNTER_SYNC = 16423,
        /// RFC 6467.
        SECURE_PASSWORD_METHODS = 16424,
        /// RFC 6631.
        PSK_PERSIST = 16425,
        /// RFC 6631.
        PSK_CONFIRM = 16426,
        /// RFC 6867.
        ERX_SUPPORTED = 16427,
        /// 3GPP TS 24.303.
        IFOM_CAPABILITY = 16428,
        SENDER_REQUEST_ID = 16429,
        /// RFC 7383.
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// RFC 7427.
        SIGNATURE_HASH_ALGORITHMS = 16431,
        /// RFC 7791.
        CLONE_IKE_SA_SUPPORTED = 16432,
        /// RFC 7791.
        CLONE_IKE_SA = 16433,
        /// RFC 8019.
        PUZZLE = 16434,
        /// RFC 8784.
        USE_PPK = 16435,
        /// RFC 8784.
        PPK_IDENTITY = 16436,
        /// RFC 8784.
        NO_PPK_AUTH = 16437,
        /// RFC 9242.
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
        /// RFC 8983.
        IP4_ALLOWED = 16439,
        /// RFC 8983.
        IP6_ALLOWED = 16440,
        /// RFC 9370.
        ADDITIONAL_KEY_EXCHANGE = 16441,
        /// RFC 9347.
        USE_AGGFRAG = 16442,
        /// RFC 9593.
        SUPPORTED_AUTH_METHODS = 16443,
        /// RFC 9611: this CHILD SA is one of several with the same selectors, each for one resource
        /// (a CPU, a queue) of its sender, whose identifier it may carry.
        SA_RESOURCE_INFO = 16444,
    }
}

impl NotifyType {
    /// Error types are those below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

wire_enum! {
    /// Hash algorithm identifiers of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §7, RFC 8420).
    pub struct HashAlgorithm(u16) {
        SHA1 = 1,
        SHA2_256 = 2,
        SHA2_384 = 3,
        SHA2_512 = 4,
        /// RFC 8420: the signature algorithm hashes internally (Ed25519, Ed448).
        IDENTITY = 5,
    }
}
