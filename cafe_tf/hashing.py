"""The fixed 64-bit hashing shared by the sketch, the layers and the serving path.

Everything here is stock TensorFlow, so a SavedModel that uses it needs no
custom op. `mix64` is the splitmix64 finaliser, the same function as
`cafe::Mix64` in custom_ops/core/hotsketch.h.
"""

import numpy as np
import tensorflow as tf

_MASK64 = (1 << 64) - 1
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def mix64_int(x: int) -> int:
    """Python-int splitmix64 finaliser (for constants); returns an unsigned 64-bit int."""
    x &= _MASK64
    x ^= x >> 30
    x = (x * _C1) & _MASK64
    x ^= x >> 27
    x = (x * _C2) & _MASK64
    x ^= x >> 31
    return x


def as_signed64(x: int) -> int:
    """The int64 with the same 64 bits as the unsigned int `x`."""
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


def mix64(x: tf.Tensor) -> tf.Tensor:
    """splitmix64 finaliser of int64 `x`, as uint64 (wrapping arithmetic)."""
    u = tf.bitcast(tf.convert_to_tensor(x, tf.int64), tf.uint64)
    u = tf.bitwise.bitwise_xor(u, tf.bitwise.right_shift(u, tf.constant(30, tf.uint64)))
    u = u * tf.constant(_C1, tf.uint64)
    u = tf.bitwise.bitwise_xor(u, tf.bitwise.right_shift(u, tf.constant(27, tf.uint64)))
    u = u * tf.constant(_C2, tf.uint64)
    return tf.bitwise.bitwise_xor(u, tf.bitwise.right_shift(u, tf.constant(31, tf.uint64)))


def mix64_mod(x: tf.Tensor, modulus) -> tf.Tensor:
    """`mix64(x) mod modulus` as int64 (the sketch's bucket when modulus = W).

    `modulus` is a positive int or an integer tensor broadcastable to x.
    """
    if isinstance(modulus, int):
        if modulus <= 0:
            raise ValueError(f"modulus must be > 0, got {modulus}")
        modulus = tf.constant(modulus, tf.uint64)
    else:
        modulus = tf.cast(modulus, tf.uint64)
    return tf.cast(tf.math.floormod(mix64(x), modulus), tf.int64)


def field_salt(feature_index: int) -> int:
    """The int64 XORed into the ids of the feature (field) `feature_index` to form their
    sketch keys."""
    return as_signed64(mix64_int(feature_index + 1))


def field_keys(ids: tf.Tensor, feature_index: int) -> tf.Tensor:
    """Sketch keys of the int64 ids of the feature (field) `feature_index`:
    `ids XOR salt(feature_index)`.

    XOR with a per-feature constant keeps ids of one feature distinct (it is a
    bijection) and makes equal ids of different features different keys.
    """
    return tf.bitwise.bitwise_xor(
        tf.convert_to_tensor(ids, tf.int64), tf.constant(field_salt(feature_index), tf.int64)
    )


def field_keys_numpy(ids, feature_index) -> np.ndarray:
    """`field_keys` in numpy: int64 ids of any shape XOR the salts of `feature_index`
    (an int array broadcast against them, e.g. `np.arange(F)` for [N, F] ids).

    Example:
      >>> int(field_keys_numpy(np.array([5]), np.array([0]))[0]) == 5 ^ field_salt(0)
      True
    """
    feature_index = np.asarray(feature_index, np.int64)
    salts = np.array([field_salt(i) for i in range(int(feature_index.max(initial=-1)) + 1)])
    return np.bitwise_xor(np.asarray(ids, np.int64), salts.astype(np.int64)[feature_index])


def hashed_row(keys: tf.Tensor, num_rows, table_seed: int) -> tf.Tensor:
    """Row of a key in a hashed table of `num_rows` rows (int or per-key tensor);
    tables differ by seed."""
    salted = tf.bitwise.bitwise_xor(
        keys, tf.constant(as_signed64(mix64_int(~table_seed)), tf.int64)
    )
    return mix64_mod(salted, num_rows)


def fingerprint(keys: tf.Tensor) -> tf.Tensor:
    """32-bit fingerprints of int64 keys: the high 32 bits of `mix64(key)`, as int64 in
    [0, 2**32) (`cafe::FingerprintOf`). The sketch's bucket is `mix64(key) mod W`."""
    keys = tf.cast(keys, tf.int64)
    return tf.cast(tf.bitwise.right_shift(mix64(keys), tf.constant(32, tf.uint64)), tf.int64)


def fingerprint_row(fingerprints: tf.Tensor, num_rows, table_seed: int) -> tf.Tensor:
    """CAFE's hashed (cold) or medium row of a key, from its fingerprint:
    `hashed_row(fingerprint, num_rows, seed)` (`cafe::FingerprintRow`). A migration
    knows the fingerprint of a promoted key (not the key), which is enough to find
    the rows it read. Tables must have fewer than 2**32 rows."""
    return hashed_row(tf.convert_to_tensor(fingerprints, tf.int64), num_rows, table_seed)


def string_ids(values: tf.Tensor) -> tf.Tensor:
    """Fingerprints string ids to int64 ids (FarmHash, stable across processes)."""
    return tf.strings.to_hash_bucket_fast(values, 2**63 - 1)
