//! `.npy` and `.npz` files in and out, compared by numpy.

use crate::{json_of, ok, python_mmappickle, python_numpy2, run_python};

// .npy and .npz files made by numpy go in and come out unchanged, in both encodings.
#[test]
fn npy_and_npz_round_trip_through_numpy() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path();
    let cases = [
        "c_order",
        "fortran",
        "big_endian",
        "unicode",
        "zero_d",
        "empty",
        "v2",
        "v3",
        "bools",
    ];
    run_python(
        &python_numpy2(),
        path,
        "import numpy as np\n\
         f = np.lib.format\n\
         np.save('c_order.npy', np.arange(24, dtype='<f4').reshape(2, 3, 4))\n\
         np.save('fortran.npy', np.asfortranarray(np.arange(60, dtype='>i8').reshape(3, 4, 5)))\n\
         np.save('big_endian.npy', np.arange(5, dtype='>f8'))\n\
         np.save('unicode.npy', np.array(['ab', 'cdé', ''], dtype='<U3'))\n\
         np.save('zero_d.npy', np.float64(3.5))\n\
         np.save('empty.npy', np.zeros((0, 3), dtype='u2'))\n\
         f.write_array(open('v2.npy', 'wb'), np.arange(7, dtype='i2'), version=(2, 0))\n\
         f.write_array(open('v3.npy', 'wb'), np.arange(9, dtype='c8').reshape(3, 3), version=(3, 0))\n\
         np.save('bools.npy', np.array([[True, False], [False, True]]))\n\
         np.savez_compressed('archive.npz', x=np.arange(10), y=np.asfortranarray(np.ones((3, 2), dtype='c16')))\n",
    );
    for encoding in ["compatible", "portable"] {
        let file = format!("{encoding}.mmdpickle");
        for case in cases {
            ok(
                &[
                    "--encoding",
                    encoding,
                    "import-npy",
                    &file,
                    case,
                    &format!("{case}.npy"),
                ],
                path,
            );
        }
        let imported = ok(
            &["--encoding", encoding, "import-npz", &file, "archive.npz"],
            path,
        );
        assert!(
            imported.contains("imported \"y\": complex128 (3, 2)"),
            "{imported}"
        );
        for key in cases.iter().chain(&["x", "y"]) {
            ok(
                &["export-npy", &file, key, &format!("{encoding}_{key}.npy")],
                path,
            );
        }
        // What we export is byte for byte what numpy 2 saves, for C-ordered
        // arrays numpy writes as version 1.0.
        for case in [
            "c_order",
            "big_endian",
            "unicode",
            "zero_d",
            "empty",
            "bools",
        ] {
            let ours = std::fs::read(path.join(format!("{encoding}_{case}.npy"))).expect("ours");
            let numpy = std::fs::read(path.join(format!("{case}.npy"))).expect("numpy's");
            assert!(
                ours == numpy,
                "{encoding} {case}: exported bytes differ from numpy's"
            );
        }
        // Every written array is aligned for as_slice.
        let rows = json_of(&ok(&["ls", "--json", &file], path));
        assert!(rows
            .as_array()
            .is_some_and(|rows| rows.iter().all(|row| row["aligned"] == true)));
    }
    let checked = run_python(
        &python_numpy2(),
        path,
        "import numpy as np, pickle, warnings\n\
         warnings.simplefilter('error')\n\
         z = np.load('archive.npz')\n\
         for enc in ['compatible', 'portable']:\n\
         \x20   for key in ['c_order', 'fortran', 'big_endian', 'unicode', 'zero_d', 'empty', 'v2', 'v3', 'bools', 'x', 'y']:\n\
         \x20       a = z[key] if key in ('x', 'y') else np.load(key + '.npy')\n\
         \x20       b = np.load('%s_%s.npy' % (enc, key))\n\
         \x20       assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), (enc, key)\n\
         d = pickle.load(open('portable.mmdpickle', 'rb'))\n\
         assert (d['fortran'] == np.load('fortran.npy')).all() and d['fortran'].flags.writeable\n\
         print('ok', len(d))\n",
    );
    assert_eq!(checked, "ok 11\n");
    // Python mmappickle maps the compatible arrays.
    let mapped = run_python(
        &python_mmappickle(),
        path,
        "from mmappickle import mmapdict\n\
         m = mmapdict('compatible.mmdpickle', True)\n\
         print(type(m['c_order']).__name__, m['fortran'][2, 3, 4], m['unicode'][1])\n",
    );
    assert_eq!(mapped, "memmap 59 cdé\n");
}
