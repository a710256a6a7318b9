//! Every pickle opcode byte, named as `pickletools` names it: the one definition the codec,
//! the container's layout and the array expression all use.

/// Defines each opcode constant and the table of all of them with their names.
macro_rules! opcodes {
    ($($name:ident = $byte:expr;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`")]
            pub const $name: u8 = $byte;
        )*

        /// Every opcode byte with its `pickletools` name, in `pickletools` order.
        pub(crate) const OPCODES: &[(u8, &str)] = &[$(($name, stringify!($name))),*];
    };
}

opcodes! {
    INT = b'I';
    BININT = b'J';
    BININT1 = b'K';
    BININT2 = b'M';
    LONG = b'L';
    LONG1 = 0x8a;
    LONG4 = 0x8b;
    STRING = b'S';
    BINSTRING = b'T';
    SHORT_BINSTRING = b'U';
    BINBYTES = b'B';
    SHORT_BINBYTES = b'C';
    BINBYTES8 = 0x8e;
    BYTEARRAY8 = 0x96;
    NEXT_BUFFER = 0x97;
    READONLY_BUFFER = 0x98;
    NONE = b'N';
    NEWTRUE = 0x88;
    NEWFALSE = 0x89;
    UNICODE = b'V';
    SHORT_BINUNICODE = 0x8c;
    BINUNICODE = b'X';
    BINUNICODE8 = 0x8d;
    FLOAT = b'F';
    BINFLOAT = b'G';
    EMPTY_LIST = b']';
    APPEND = b'a';
    APPENDS = b'e';
    LIST = b'l';
    EMPTY_TUPLE = b')';
    TUPLE = b't';
    TUPLE1 = 0x85;
    TUPLE2 = 0x86;
    TUPLE3 = 0x87;
    EMPTY_DICT = b'}';
    DICT = b'd';
    SETITEM = b's';
    SETITEMS = b'u';
    EMPTY_SET = 0x8f;
    ADDITEMS = 0x90;
    FROZENSET = 0x91;
    POP = b'0';
    DUP = b'2';
    MARK = b'(';
    POP_MARK = b'1';
    GET = b'g';
    BINGET = b'h';
    LONG_BINGET = b'j';
    PUT = b'p';
    BINPUT = b'q';
    LONG_BINPUT = b'r';
    MEMOIZE = 0x94;
    EXT1 = 0x82;
    EXT2 = 0x83;
    EXT4 = 0x84;
    GLOBAL = b'c';
    STACK_GLOBAL = 0x93;
    REDUCE = b'R';
    BUILD = b'b';
    INST = b'i';
    OBJ = b'o';
    NEWOBJ = 0x81;
    NEWOBJ_EX = 0x92;
    PROTO = 0x80;
    STOP = b'.';
    FRAME = 0x95;
    PERSID = b'P';
    BINPERSID = b'Q';
}
