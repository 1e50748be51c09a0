"""`python -m cafe_tf.cli ...` is `cafe-tf ...`."""

from cafe_tf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
