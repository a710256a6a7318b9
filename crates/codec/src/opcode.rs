//! Every pickle opcode byte, named as `pickletools` names it: the one definition the codec,
//! the container's layout and the array expression all use.
//!
//! The table below is the only place an opcode's facts are written: its byte, its
//! [`Op`] variant and how its argument is laid out. The constants, [`Op::code`],
//! the parser's argument reading and the unpickler's skip table all come from it.

use crate::op::Op;

/// How an opcode's argument is laid out after the opcode byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgForm {
    /// No argument.
    Nothing,
    /// A binary value of this many bytes.
    Fixed(usize),
    /// A little-endian unsigned length of this many bytes, then that many bytes.
    Counted(usize),
    /// As [`Counted`](Self::Counted), but the length is signed and must not be negative.
    SignedCounted(usize),
    /// One text line that must be ASCII, up to its `\n`.
    AsciiLine,
    /// One line of any bytes, up to its `\n`.
    Line,
    /// Two UTF-8 text lines, each up to its `\n`: a module and a name.
    TwoLines,
}

/// What the table says of one opcode byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpSpec {
    /// The `pickletools` name.
    pub(crate) name: &'static str,
    /// How its argument is laid out.
    pub(crate) arg: ArgForm,
}

/// The table entry of opcode byte `code`, if it is an opcode.
#[inline]
pub(crate) fn spec(code: u8) -> Option<OpSpec> {
    SPECS[usize::from(code)]
}

/// The `pickletools` name of `code`, `"?"` if it is no opcode; `const`, so that
/// the name of a known op costs nothing in a hot loop.
pub(crate) const fn name(code: u8) -> &'static str {
    match SPECS[code as usize] {
        Some(spec) => spec.name,
        None => "?",
    }
}

/// Defines, from one list, each opcode constant, the table of all of them by byte,
/// [`Op::code`] and the ops that have no argument.
macro_rules! opcodes {
    ($($name:ident = $byte:literal, $variant:ident, $form:ident $(($width:literal))?;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`")]
            pub const $name: u8 = $byte;
        )*

        /// [`spec`] of every byte; a byte listed twice fails the build.
        const SPECS: [Option<OpSpec>; 256] = {
            let mut table = [None; 256];
            $(
                assert!(table[$name as usize].is_none(), "an opcode byte is listed twice");
                table[$name as usize] = Some(OpSpec {
                    name: stringify!($name),
                    arg: ArgForm::$form $(($width))?,
                });
            )*
            table
        };

        impl Op<'_> {
            /// The opcode byte.
            pub fn code(&self) -> u8 {
                match self {
                    $(Op::$variant { .. } => $name,)*
                }
            }
        }

        /// The op of `code` when it takes no argument.
        #[inline]
        pub(crate) fn bare_op(code: u8) -> Option<Op<'static>> {
            match code {
                $($name => opcodes!(@bare $variant $form),)*
                _ => None,
            }
        }
    };
    (@bare $variant:ident Nothing) => { Some(Op::$variant) };
    (@bare $variant:ident $form:ident) => { None };
}

opcodes! {
    // name           byte     Op variant        argument
    INT             = b'I',    Int,              AsciiLine;
    BININT          = b'J',    BinInt,           Fixed(4);
    BININT1         = b'K',    BinInt1,          Fixed(1);
    BININT2         = b'M',    BinInt2,          Fixed(2);
    LONG            = b'L',    Long,             AsciiLine;
    LONG1           = 0x8a,    Long1,            Counted(1);
    LONG4           = 0x8b,    Long4,            SignedCounted(4);
    STRING          = b'S',    String,           Line;
    BINSTRING       = b'T',    BinString,        SignedCounted(4);
    SHORT_BINSTRING = b'U',    ShortBinString,   Counted(1);
    BINBYTES        = b'B',    BinBytes,         Counted(4);
    SHORT_BINBYTES  = b'C',    ShortBinBytes,    Counted(1);
    BINBYTES8       = 0x8e,    BinBytes8,        Counted(8);
    BYTEARRAY8      = 0x96,    ByteArray8,       Counted(8);
    NEXT_BUFFER     = 0x97,    NextBuffer,       Nothing;
    READONLY_BUFFER = 0x98,    ReadonlyBuffer,   Nothing;
    NONE            = b'N',    None,             Nothing;
    NEWTRUE         = 0x88,    NewTrue,          Nothing;
    NEWFALSE        = 0x89,    NewFalse,         Nothing;
    UNICODE         = b'V',    Unicode,          Line;
    SHORT_BINUNICODE = 0x8c,   ShortBinUnicode,  Counted(1);
    BINUNICODE      = b'X',    BinUnicode,       Counted(4);
    BINUNICODE8     = 0x8d,    BinUnicode8,      Counted(8);
    FLOAT           = b'F',    Float,            AsciiLine;
    BINFLOAT        = b'G',    BinFloat,         Fixed(8);
    EMPTY_LIST      = b']',    EmptyList,        Nothing;
    APPEND          = b'a',    Append,           Nothing;
    APPENDS         = b'e',    Appends,          Nothing;
    LIST            = b'l',    List,             Nothing;
    EMPTY_TUPLE     = b')',    EmptyTuple,       Nothing;
    TUPLE           = b't',    Tuple,            Nothing;
    TUPLE1          = 0x85,    Tuple1,           Nothing;
    TUPLE2          = 0x86,    Tuple2,           Nothing;
    TUPLE3          = 0x87,    Tuple3,           Nothing;
    EMPTY_DICT      = b'}',    EmptyDict,        Nothing;
    DICT            = b'd',    Dict,             Nothing;
    SETITEM         = b's',    SetItem,          Nothing;
    SETITEMS        = b'u',    SetItems,         Nothing;
    EMPTY_SET       = 0x8f,    EmptySet,         Nothing;
    ADDITEMS        = 0x90,    AddItems,         Nothing;
    FROZENSET       = 0x91,    FrozenSet,        Nothing;
    POP             = b'0',    Pop,              Nothing;
    DUP             = b'2',    Dup,              Nothing;
    MARK            = b'(',    Mark,             Nothing;
    POP_MARK        = b'1',    PopMark,          Nothing;
    GET             = b'g',    Get,              AsciiLine;
    BINGET          = b'h',    BinGet,           Fixed(1);
    LONG_BINGET     = b'j',    LongBinGet,       Fixed(4);
    PUT             = b'p',    Put,              AsciiLine;
    BINPUT          = b'q',    BinPut,           Fixed(1);
    LONG_BINPUT     = b'r',    LongBinPut,       Fixed(4);
    MEMOIZE         = 0x94,    Memoize,          Nothing;
    EXT1            = 0x82,    Ext1,             Fixed(1);
    EXT2            = 0x83,    Ext2,             Fixed(2);
    EXT4            = 0x84,    Ext4,             Fixed(4);
    GLOBAL          = b'c',    Global,           TwoLines;
    STACK_GLOBAL    = 0x93,    StackGlobal,      Nothing;
    REDUCE          = b'R',    Reduce,           Nothing;
    BUILD           = b'b',    Build,            Nothing;
    INST            = b'i',    Inst,             TwoLines;
    OBJ             = b'o',    Obj,              Nothing;
    NEWOBJ          = 0x81,    NewObj,           Nothing;
    NEWOBJ_EX       = 0x92,    NewObjEx,         Nothing;
    PROTO           = 0x80,    Proto,            Fixed(1);
    STOP            = b'.',    Stop,             Nothing;
    FRAME           = 0x95,    Frame,            Fixed(8);
    PERSID          = b'P',    PersId,           AsciiLine;
    BINPERSID       = b'Q',    BinPersId,        Nothing;
}
