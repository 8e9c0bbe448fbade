//! The CLI tests' telemetry type with a hand-written `MappedState` impl, standing in for
//! `#[derive(MappedState)]` until the derive lands (then `examples/shared/telemetry.rs` replaces
//! it). Layout: C order, every primitive aligned to its size.

use mapped_state::schema::{EnumDesc, FieldDesc, Kind, Prim, StructDesc, TypeDesc, VariantDesc};
use mapped_state::{DecodeError, FixedStr, MappedState, NoFields, RawReader, RawWriter};

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(u8)]
pub enum Mode {
    Idle = 0,
    Running = 1,
    Fault = 2,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub min_rpm: u32,
    pub max_rpm: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Telemetry {
    pub rpm: u32,
    pub temperature_c: f32,
    pub uptime_s: u64,
    pub mode: Mode,
    pub healthy: bool,
    pub grade: char,
    pub samples: [f32; 8],
    pub limits: Limits,
    pub label: FixedStr<32>,
}

const U32: TypeDesc = TypeDesc::prim(Prim::U32);

const MODE: TypeDesc = TypeDesc {
    kind: Kind::Enum(&EnumDesc {
        name: "Mode",
        repr: Prim::U8,
        variants: &[
            VariantDesc {
                name: "Idle",
                value: 0,
            },
            VariantDesc {
                name: "Running",
                value: 1,
            },
            VariantDesc {
                name: "Fault",
                value: 2,
            },
        ],
    }),
    size: 1,
    align: 1,
};

const LIMITS: TypeDesc = TypeDesc {
    kind: Kind::Struct(&StructDesc {
        name: "Limits",
        fields: &[
            FieldDesc {
                name: "min_rpm",
                offset: 0,
                ty: &U32,
            },
            FieldDesc {
                name: "max_rpm",
                offset: 4,
                ty: &U32,
            },
        ],
    }),
    size: 8,
    align: 4,
};

/// `(name, offset, type)` of each field, in order.
const FIELDS: &[FieldDesc] = &[
    FieldDesc {
        name: "rpm",
        offset: 0,
        ty: &U32,
    },
    FieldDesc {
        name: "temperature_c",
        offset: 4,
        ty: &TypeDesc::prim(Prim::F32),
    },
    FieldDesc {
        name: "uptime_s",
        offset: 8,
        ty: &TypeDesc::prim(Prim::U64),
    },
    FieldDesc {
        name: "mode",
        offset: 16,
        ty: &MODE,
    },
    FieldDesc {
        name: "healthy",
        offset: 17,
        ty: &TypeDesc::prim(Prim::Bool),
    },
    FieldDesc {
        name: "grade",
        offset: 20,
        ty: &TypeDesc::prim(Prim::Char),
    },
    FieldDesc {
        name: "samples",
        offset: 24,
        ty: <[f32; 8] as MappedState>::TYPE,
    },
    FieldDesc {
        name: "limits",
        offset: 56,
        ty: &LIMITS,
    },
    FieldDesc {
        name: "label",
        offset: 64,
        ty: <FixedStr<32> as MappedState>::TYPE,
    },
];

/// Encodes `v` at `out[at..]`.
fn put<T: MappedState>(out: &mut [u8], at: usize, v: &T) {
    v.encode(&mut out[at..at + T::TYPE.size]);
}

/// Decodes the `T` at `bytes[at..]`, naming `field` in the error.
fn get<T: MappedState>(bytes: &[u8], at: usize, field: &str) -> Result<T, DecodeError> {
    T::decode(&bytes[at..at + T::TYPE.size]).map_err(|e| e.in_field(field, at))
}

impl MappedState for Telemetry {
    const TYPE: &'static TypeDesc = &TypeDesc {
        kind: Kind::Struct(&StructDesc {
            name: "Telemetry",
            fields: FIELDS,
        }),
        size: 104,
        align: 8,
    };
    type ReadView = NoFields<RawReader>;
    type WriteView = NoFields<RawWriter>;

    fn encode(&self, out: &mut [u8]) {
        put(out, 0, &self.rpm);
        put(out, 4, &self.temperature_c);
        put(out, 8, &self.uptime_s);
        out[16] = self.mode as u8;
        put(out, 17, &self.healthy);
        put(out, 20, &self.grade);
        put(out, 24, &self.samples);
        put(out, 56, &self.limits.min_rpm);
        put(out, 60, &self.limits.max_rpm);
        put(out, 64, &self.label);
    }

    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mode = match b[16] {
            0 => Mode::Idle,
            1 => Mode::Running,
            2 => Mode::Fault,
            _ => return Err(DecodeError::new(&b[16..17], "a `Mode`").in_field("mode", 16)),
        };
        Ok(Telemetry {
            rpm: get(b, 0, "rpm")?,
            temperature_c: get(b, 4, "temperature_c")?,
            uptime_s: get(b, 8, "uptime_s")?,
            mode,
            healthy: get(b, 17, "healthy")?,
            grade: get(b, 20, "grade")?,
            samples: get(b, 24, "samples")?,
            limits: Limits {
                min_rpm: get(b, 56, "limits.min_rpm")?,
                max_rpm: get(b, 60, "limits.max_rpm")?,
            },
            label: get(b, 64, "label")?,
        })
    }
}
