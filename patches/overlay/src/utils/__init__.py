# Added by mmrec-ld4mrec (`mmrec-ld4mrec install`; `mmrec-ld4mrec uninstall` removes it).
# MMRec's `utils` is a namespace package; this file makes the first `import utils...` of
# main.py apply mmrec-ld4mrec's runtime shims for today's numpy / scipy / torch. Each shim
# acts only where the old attribute or module is missing.
try:
    from mmrec_ld4mrec.mmrec.shims import apply as _apply_shims
except ImportError as _exc:  # the plugin was uninstalled from this Python, not from the checkout
    import sys as _sys

    print(f"mmrec-ld4mrec shims not applied ({_exc}); run `mmrec-ld4mrec uninstall --mmrec-root ...`",
          file=_sys.stderr)
else:
    _apply_shims()
