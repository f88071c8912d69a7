"""`Decoder`'s former home: it now lives beside `DecodeStage` in `serving.core.stages`,
so that a request's decode is read in one file. The demo's training scripts
(``models/training``) import it from here.
"""

from serving.core.stages import Decoder

__all__ = ["Decoder"]
