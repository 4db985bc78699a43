"""The Label Studio labeling configuration for the triplet task (``perface triplets labeling-config``).

The annotator sees the anchor face and two candidates and picks the candidate that looks more like the
anchor. Task data fields are ``anchor``, ``a`` and ``b`` (image URLs); the single-choice control is named
``choice`` and exports ``a`` or ``b`` (the ``alias`` of each option), which is what
:func:`perface.annotations.readers.read_label_studio` expects. Tasks written by ``perface triplets sample
--label-studio`` fit it.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

__all__ = ["labeling_config", "QUESTION"]

QUESTION = "Which face looks more like the face on the left?"


def labeling_config(question: str = QUESTION, from_name: str = "choice",
                    fields: tuple[str, str, str] = ("anchor", "a", "b"), image_width: str = "240px") -> str:
    """Label Studio XML for the 2AFC triplet task (paste it into Settings > Labeling Interface > Code)."""
    anchor, a, b = fields
    w = quoteattr(image_width)
    return f"""<View>
  <Header value={quoteattr(question)}/>
  <View style="display: flex; gap: 24px; align-items: flex-start;">
    <View style="text-align: center;">
      <Header value="Reference" size="6"/>
      <Image name={quoteattr(anchor)} value="${anchor}" width={w}/>
    </View>
    <View style="text-align: center; border-left: 2px solid #ccc; padding-left: 24px;">
      <Header value="A" size="6"/>
      <Image name={quoteattr(a)} value="${a}" width={w}/>
    </View>
    <View style="text-align: center;">
      <Header value="B" size="6"/>
      <Image name={quoteattr(b)} value="${b}" width={w}/>
    </View>
  </View>
  <Choices name={quoteattr(from_name)} toName={quoteattr(anchor)} choice="single-radio" required="true" showInline="true">
    <Choice value="A looks more like the reference" alias="a" hotkey="1"/>
    <Choice value="B looks more like the reference" alias="b" hotkey="2"/>
  </Choices>
</View>
"""
