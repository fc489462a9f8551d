/// Declares a wire enumeration: a transparent newtype over the integer on the wire with named constants.
///
/// Unknown values are representable (they are just the integer), so they survive a round trip; `Debug` and
/// `Display` print the RFC name where there is one and `Name(value)` otherwise.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($repr:ty) {
            $( $(#[$cmeta:meta])* $cname:ident = $val:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        $vis struct $name(pub $repr);

        #[allow(missing_docs)]
        impl $name {
            $( $(#[$cmeta])* pub const $cname: Self = Self($val); )*

            /// Every value this crate has a name for.
            pub const KNOWN: &'static [Self] = &[$( Self($val), )*];

            /// The RFC name of this value, if it has one.
            pub fn name(self) -> Option<&'static str> {
                $( if self.0 == $val { return Some(stringify!($cname)); } )*
                None
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(self, f)
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self { Self(v) }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> Self { v.0 }
        }
    };
}
